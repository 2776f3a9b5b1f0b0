/**
 * OCI image references, as the distribution spec and `docker pull` read them:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component ( "/" path-component )*
 *   domain     := host-component ( "." host-component )* [ ":" port ]
 *   path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest     := "sha256:" 64 lower-case hex digits
 *
 * The first component is a registry when it contains "." or ":", is `localhost`, or has an upper-case
 * letter (registries are case-insensitive, repositories are lower case). Pure; no I/O.
 */

export interface ImageReference {
  /** Registry host[:port], or null for the default registry. */
  registry: string | null;
  repository: string;
  tag: string | null;
  digest: string | null;
}

const HOST_COMPONENT = /^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PATH_COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const PORT = /^\d{1,5}$/;

export const MAX_IMAGE_REFERENCE_LENGTH = 512;
const MAX_NAME_LENGTH = 255;

/** Parses a reference, or says what is wrong with it (a message without the field name). */
export function parseImageReference(text: string): ImageReference | { error: string } {
  if (text.length === 0) return { error: 'must not be empty' };
  if (text.length > MAX_IMAGE_REFERENCE_LENGTH) {
    return { error: `must be at most ${MAX_IMAGE_REFERENCE_LENGTH} characters` };
  }
  if (/\s/.test(text)) return { error: 'must not contain whitespace' };

  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return { error: 'digest must be sha256: followed by 64 lower-case hex digits' };
  }

  // A tag follows the last ":" only if no "/" comes after it (else that ":" was a registry port).
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      return { error: 'tag must be 1 to 128 characters of A-Z a-z 0-9 _ . - (not starting with . or -)' };
  }

  if (rest.length === 0) return { error: 'must name a repository' };
  if (rest.length > MAX_NAME_LENGTH) return { error: `name must be at most ${MAX_NAME_LENGTH} characters` };
  const components = rest.split('/');
  let registry: string | null = null;
  const first = components[0] ?? '';
  if (components.length > 1 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase())) {
    registry = first;
    components.shift();
    const [host, port, ...extra] = registry.split(':');
    if (extra.length > 0 || (port !== undefined && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535))) {
      return { error: 'registry port must be a number from 1 to 65535' };
    }
    if (host === undefined || host.length === 0 || !host.split('.').every((part) => HOST_COMPONENT.test(part))) {
      return { error: 'registry must be a host name with an optional port' };
    }
  }
  for (const component of components) {
    if (!PATH_COMPONENT.test(component)) {
      return {
        error:
          'repository must be lower-case path components of a-z 0-9 separated by "/" (with ".", "_", "__" or "-" inside a component)',
      };
    }
  }
  return { registry, repository: components.join('/'), tag, digest };
}
