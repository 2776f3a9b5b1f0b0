import type { Socket } from 'node:net';
import { connect, createServer } from 'node:net';
import { TcpLink } from '../tcp-link';

/** An echo server on a free loopback port. */
async function echoServer() {
  const server = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

/** Sends `text` and resolves with what came back, or with 'closed' when the link drops the connection. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(text));
    socket.once('data', (data) => {
      resolve(data.toString());
      socket.destroy();
    });
    socket.once('close', () => resolve('closed'));
    socket.once('error', () => resolve('closed'));
  });
}

describe('TcpLink', () => {
  it('forwards, drops everything while cut, and forwards again once healed', async () => {
    const echo = await echoServer();
    const link = await TcpLink.open({ host: '127.0.0.1', port: echo.port });
    try {
      expect(await roundTrip(link.port, 'one')).toBe('one');

      const open = connect(link.port, '127.0.0.1');
      await new Promise((resolve) => open.once('connect', resolve));
      const dropped = new Promise((resolve) => open.once('close', resolve));
      link.cut();
      await dropped; // an established connection is dropped
      expect(await roundTrip(link.port, 'two')).toBe('closed'); // and new ones go nowhere

      link.heal();
      expect(await roundTrip(link.port, 'three')).toBe('three');
    } finally {
      await link.close();
      await new Promise((resolve) => echo.server.close(resolve));
    }
  });
});
