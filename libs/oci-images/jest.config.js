module.exports = { ...require('../../jest.preset.js'), displayName: 'oci-images', rootDir: __dirname };
