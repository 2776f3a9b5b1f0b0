module.exports = { ...require('../../jest.preset.js'), displayName: 'guest-protocol', rootDir: __dirname };
