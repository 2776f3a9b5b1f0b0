module.exports = { ...require('../../jest.preset.js'), displayName: 'node-acl', rootDir: __dirname };
