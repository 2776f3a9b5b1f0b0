module.exports = { ...require('../../jest.preset.js'), displayName: 'network-policy-model', rootDir: __dirname };
