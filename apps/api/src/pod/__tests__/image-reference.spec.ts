import { parseImageReference } from '../image-reference';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', { registry: null, repository: 'nginx', tag: null, digest: null }],
    ['nginx:1.25-alpine', { registry: null, repository: 'nginx', tag: '1.25-alpine', digest: null }],
    ['library/nginx:latest', { registry: null, repository: 'library/nginx', tag: 'latest', digest: null }],
    [
      'registry.example.com/team/app:1.0',
      { registry: 'registry.example.com', repository: 'team/app', tag: '1.0', digest: null },
    ],
    ['localhost:5000/app', { registry: 'localhost:5000', repository: 'app', tag: null, digest: null }],
    ['localhost/app:v1', { registry: 'localhost', repository: 'app', tag: 'v1', digest: null }],
    ['10.0.0.1:443/a/b/c:T_1', { registry: '10.0.0.1:443', repository: 'a/b/c', tag: 'T_1', digest: null }],
    ['ghcr.io/org/my_app__x.y-z', { registry: 'ghcr.io', repository: 'org/my_app__x.y-z', tag: null, digest: null }],
    [`busybox@${DIGEST}`, { registry: null, repository: 'busybox', tag: null, digest: DIGEST }],
    [`quay.io/a/b:1.0@${DIGEST}`, { registry: 'quay.io', repository: 'a/b', tag: '1.0', digest: DIGEST }],
    ['MyRegistry/app', { registry: 'MyRegistry', repository: 'app', tag: null, digest: null }],
  ])('accepts %s', (text, expected) => {
    expect(parseImageReference(text)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['nginx latest', /whitespace/],
    [' nginx', /whitespace/],
    ['nginx\t', /whitespace/],
    ['Nginx', /repository/],
    ['docker.io/Library/nginx', /repository/],
    ['registry.example.com/Team/app:1', /repository/],
    ['nginx:', /tag/],
    ['nginx:-x', /tag/],
    [`nginx:${'a'.repeat(129)}`, /tag/],
    ['nginx:a/b', /port/],
    ['nginx@sha256:abc', /digest/],
    [`nginx@sha256:${'A'.repeat(64)}`, /digest/],
    [`nginx@sha512:${'a'.repeat(64)}`, /digest/],
    [`nginx@${'a'.repeat(64)}`, /digest/],
    [`nginx@sha256:${'a'.repeat(65)}`, /digest/],
    ['registry.example.com:99999/app', /port/],
    ['registry.example.com:0/app', /port/],
    ['registry.example.com:ab/app', /port|tag/],
    ['-bad.example.com/app', /registry/],
    ['registry..example.com/app', /registry/],
    ['app//x', /repository/],
    ['app/', /repository/],
    ['/app', /repository/],
    ['app_-x', /repository/],
    ['app.', /repository/],
    [':tag', /repository/],
    [`a/${'b'.repeat(300)}`, /name/],
    [`a:${'1'.repeat(600)}`, /512/],
    ['https://registry.example.com/app', /repository|port|registry/],
  ])('refuses %j', (text, problem) => {
    const result = parseImageReference(text);
    expect(result).toHaveProperty('error');
    expect((result as { error: string }).error).toMatch(problem);
  });
});
