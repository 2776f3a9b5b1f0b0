module.exports = { ...require('../../jest.preset.js'), displayName: 'node-client', rootDir: __dirname };
