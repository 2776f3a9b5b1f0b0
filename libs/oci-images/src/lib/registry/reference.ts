/**
 * Image references (`[registry/]repository[:tag][@digest]`), parsed and validated per the distribution spec's
 * grammar, with Docker Hub's defaults: no registry means `registry-1.docker.io`, a one-component repository there
 * is in `library/`, and neither tag nor digest means the tag `latest`.
 */
import { isDigest, type Digest } from '../digest';
import { ImageError } from '../errors';

/** The host Docker Hub's API answers on, whatever name the reference used for it. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);
const DOCKER_HUB_DISPLAY = 'docker.io';

// https://github.com/distribution/distribution/blob/main/reference/regexp.go (as of 2.8, sha256 only here)
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:.]+\\])(?::[0-9]{1,5})?$`);
const TAG = /^\w[\w.-]{0,127}$/;
/** The distribution spec's bound on a repository name, registry included. */
const NAME_MAX = 255;
const INPUT_MAX = 1024;

export class ImageReference {
  constructor(
    /** The host (and port) the registry API is on: `registry-1.docker.io` for Docker Hub. */
    readonly registry: string,
    /** The repository, `library/busybox` style for Docker Hub's official images. */
    readonly repository: string,
    /** The tag, if any: `latest` when the reference had neither tag nor digest. */
    readonly tag: string | undefined,
    /** The digest, if the reference pins one: it wins over the tag. */
    readonly digest: Digest | undefined,
  ) {}

  /** What a manifest is fetched by: the digest when there is one, else the tag. */
  get manifestReference(): string {
    return this.digest ?? this.tag ?? 'latest';
  }

  /** The same image pinned to a digest (the tag kept for display). */
  withDigest(digest: Digest): ImageReference {
    return new ImageReference(this.registry, this.repository, this.tag, digest);
  }

  /** Canonical form, parsed back to the same reference: `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…`. */
  toString(): string {
    const registry = this.registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_DISPLAY : this.registry;
    return `${registry}/${this.repository}${this.tag === undefined ? '' : `:${this.tag}`}${this.digest === undefined ? '' : `@${this.digest}`}`;
  }
}

/** Throws ImageError BAD_REFERENCE for anything the distribution grammar does not allow. */
export function parseReference(input: string): ImageReference {
  const bad = (why: string): ImageError =>
    new ImageError('BAD_REFERENCE', `bad image reference ${JSON.stringify(input.slice(0, 200))}: ${why}`);
  if (input.length === 0) throw bad('empty');
  if (input.length > INPUT_MAX) throw bad(`longer than ${INPUT_MAX} characters`);

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const value = rest.slice(at + 1);
    if (!isDigest(value)) throw bad('the digest must be sha256:<64 lowercase hex>');
    digest = value;
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    if (!TAG.test(tag)) throw bad('a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -');
    rest = rest.slice(0, colon);
  }

  let registry = DOCKER_HUB_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Docker's rule: the first component is a registry if it looks like a host name, not like a path.
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      if (!DOMAIN.test(first)) throw bad(`${JSON.stringify(first)} is not a valid registry host`);
      const host = first.toLowerCase(); // host names are case-insensitive: one spelling, one token cache entry
      registry = DOCKER_HUB_NAMES.has(host) ? DOCKER_HUB_REGISTRY : host;
      repository = rest.slice(slash + 1);
    }
  }
  if (repository.length === 0) throw bad('no repository');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw bad(`repository path components are lowercase [a-z0-9] separated by ".", "_", "__" or "-"`);
    }
  }
  if (registry === DOCKER_HUB_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > NAME_MAX) throw bad(`the name is longer than ${NAME_MAX} characters`);

  if (tag === undefined && digest === undefined) tag = 'latest';
  return new ImageReference(registry, repository, tag, digest);
}
