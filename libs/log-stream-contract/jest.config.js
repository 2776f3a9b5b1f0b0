module.exports = { ...require('../../jest.preset.js'), displayName: 'log-stream-contract', rootDir: __dirname };
