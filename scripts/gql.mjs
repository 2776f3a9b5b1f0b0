#!/usr/bin/env node
// Sends one GraphQL operation and prints the JSON answer: node scripts/gql.mjs URL TOKEN QUERY [VARIABLES_JSON]
const [url, token, query, variables] = process.argv.slice(2);
if (!url || !query) {
  console.error('usage: node scripts/gql.mjs URL TOKEN QUERY [VARIABLES_JSON]');
  process.exit(2);
}
const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify({ query, variables: variables ? JSON.parse(variables) : undefined }),
});
const body = await response.json();
console.log(JSON.stringify(body, null, 2));
process.exit(body.errors ? 1 : 0);
