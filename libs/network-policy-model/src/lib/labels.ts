/**
 * Kubernetes-style names and labels. Each check returns why the text is refused, or `null` when it is fine.
 * Lengths are checked before any pattern, so a hostile megabyte costs one comparison.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export const MAX_DNS_LABEL_LENGTH = 63;
export const MAX_DNS_SUBDOMAIN_LENGTH = 253;
export const MAX_LABEL_NAME_LENGTH = 63;
export const MAX_LABEL_VALUE_LENGTH = 63;

/** Quoted and cut short, for echoing the caller's input in a message. */
export function quote(text: string, max = 40): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** An RFC 1123 DNS label: what `metadata.name` of most Kubernetes objects is. */
export function dnsLabelProblem(text: string): string | null {
  if (text.length === 0) return 'must not be empty.';
  if (text.length > MAX_DNS_LABEL_LENGTH) {
    return `must be at most ${MAX_DNS_LABEL_LENGTH} characters; it has ${text.length}.`;
  }
  if (!DNS_LABEL.test(text)) {
    return `must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit; got ${quote(text)}.`;
  }
  return null;
}

function dnsSubdomainProblem(text: string): string | null {
  if (text.length === 0 || text.length > MAX_DNS_SUBDOMAIN_LENGTH) {
    return `must be 1 to ${MAX_DNS_SUBDOMAIN_LENGTH} characters`;
  }
  const labels = text.split('.');
  if (labels.some((label) => label.length === 0 || label.length > MAX_DNS_LABEL_LENGTH || !DNS_LABEL.test(label))) {
    return "must be a DNS subdomain: dot-separated lower-case labels of letters, digits and '-'";
  }
  return null;
}

/** A label key: `name` or `prefix/name`, where the prefix is a DNS subdomain (e.g. `app.example.com/tier`). */
export function labelKeyProblem(key: string): string | null {
  if (key.length === 0) return 'must not be empty.';
  if (key.length > MAX_DNS_SUBDOMAIN_LENGTH + 1 + MAX_LABEL_NAME_LENGTH) {
    return `is too long (${key.length} characters).`;
  }
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const problem = dnsSubdomainProblem(key.slice(0, slash));
    if (problem !== null) return `has a prefix (before '/') that ${problem}; got ${quote(key)}.`;
  }
  if (name.length === 0 || name.length > MAX_LABEL_NAME_LENGTH || !LABEL_NAME.test(name)) {
    return (
      `must be a label name of 1 to ${MAX_LABEL_NAME_LENGTH} characters (letters, digits, '-', '_', '.', ` +
      `starting and ending with a letter or digit), optionally after a DNS prefix and '/'; got ${quote(key)}.`
    );
  }
  return null;
}

/** A label value: empty, or up to 63 characters as a label name. */
export function labelValueProblem(value: string): string | null {
  if (value.length === 0) return null;
  if (value.length > MAX_LABEL_VALUE_LENGTH || !LABEL_NAME.test(value)) {
    return (
      `must be empty or 1 to ${MAX_LABEL_VALUE_LENGTH} characters (letters, digits, '-', '_', '.', ` +
      `starting and ending with a letter or digit); got ${quote(value)}.`
    );
  }
  return null;
}
