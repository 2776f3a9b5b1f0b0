module.exports = { ...require('../../jest.preset.js'), displayName: 'graphql-limits', rootDir: __dirname };
