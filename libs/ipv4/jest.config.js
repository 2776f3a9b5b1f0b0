module.exports = { ...require('../../jest.preset.js'), displayName: 'ipv4', rootDir: __dirname };
