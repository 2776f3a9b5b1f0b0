module.exports = { ...require('../../jest.preset.js'), displayName: 'api-auth', rootDir: __dirname };
