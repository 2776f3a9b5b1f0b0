module.exports = { ...require('../../jest.preset.js'), displayName: 'netpolicy-compiler', rootDir: __dirname };
