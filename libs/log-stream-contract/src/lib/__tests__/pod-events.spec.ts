import { parsePodEventMessage, podEventChannel } from '../pod-events';

const message = {
  id: '42',
  tenantId: '0b6a6f47-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
  podId: '3f1e2d4c-5b6a-4789-8abc-def012345678',
  type: 'WARNING',
  reason: 'BackOff',
  message: 'Back-off restarting failed container web',
  createdAt: '2026-11-29T10:00:00.000Z',
};

describe('pod event channel contract', () => {
  it('names one channel per pod', () => {
    expect(podEventChannel(message.podId)).toBe(`caas:pod-events:${message.podId}`);
  });

  it('parses a published event, keeping only the contract fields', () => {
    expect(parsePodEventMessage(JSON.stringify({ ...message, extra: 'ignored' }))).toEqual(message);
  });

  it('refuses anything that is not exactly a pod event', () => {
    const variants: unknown[] = [
      'not json',
      null,
      [],
      { ...message, id: 42 },
      { ...message, id: 'x1' },
      { ...message, tenantId: 'tenant' },
      { ...message, podId: undefined },
      { ...message, type: 'ERROR' },
      { ...message, reason: 'r'.repeat(101) },
      { ...message, message: 7 },
      { ...message, createdAt: 'yesterday' },
    ];
    for (const variant of variants) {
      const payload = typeof variant === 'string' ? variant : JSON.stringify(variant);
      expect({ payload, parsed: parsePodEventMessage(payload) }).toEqual({ payload, parsed: null });
    }
  });
});
