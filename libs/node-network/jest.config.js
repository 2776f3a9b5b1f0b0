module.exports = { ...require('../../jest.preset.js'), displayName: 'node-network', rootDir: __dirname };
