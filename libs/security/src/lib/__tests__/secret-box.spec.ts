import { randomBytes } from 'node:crypto';
import { SecretBox } from '../secret-box';

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32));

  it('round-trips and never leaves the plaintext in the sealed bytes', () => {
    const sealed = box.seal('hunter2-registry-password', 'tenant-a');
    expect(Buffer.from(sealed).includes(Buffer.from('hunter2'))).toBe(false);
    expect(box.open(sealed, 'tenant-a')).toBe('hunter2-registry-password');
  });

  it('refuses another owner, another key and tampering', () => {
    const sealed = box.seal('s3cret', 'tenant-a');
    expect(() => box.open(sealed, 'tenant-b')).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 'tenant-a')).toThrow();
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] ^= 1;
    expect(() => box.open(tampered, 'tenant-a')).toThrow();
    expect(() => box.open(Buffer.from([9, 9]), 'tenant-a')).toThrow('not a sealed secret');
  });

  it('insists on a 32-byte key', () => {
    expect(() => new SecretBox(randomBytes(16))).toThrow();
  });
});
