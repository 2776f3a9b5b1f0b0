module.exports = { ...require('../../jest.preset.js'), displayName: 'cluster-harness', rootDir: __dirname };
