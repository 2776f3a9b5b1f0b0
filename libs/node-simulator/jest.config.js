module.exports = { ...require('../../jest.preset.js'), displayName: 'node-simulator', rootDir: __dirname };
