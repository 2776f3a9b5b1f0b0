// A TCP link that a test can cut: a proxy on a loopback port to `target`. `cut()` drops every connection and
// closes new ones at once (the host is partitioned from the service); `heal()` lets connections through again.
import type { Socket } from 'node:net';
import { connect, createServer } from 'node:net';

export class TcpLink {
  private readonly sockets = new Set<Socket>();
  private isCut = false;
  private readonly server = createServer((client) => this.forward(client));
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {}

  /** Listens on 127.0.0.1 (a free port) and forwards every connection to `target`. */
  static async open(target: { host: string; port: number }): Promise<TcpLink> {
    const link = new TcpLink(target);
    await new Promise<void>((resolve, reject) => {
      link.server.once('error', reject);
      link.server.listen(0, '127.0.0.1', resolve);
    });
    const address = link.server.address();
    link.port = typeof address === 'object' && address ? address.port : 0;
    return link;
  }

  get cutOff(): boolean {
    return this.isCut;
  }

  /** Every connection through the link is dropped, and new ones are closed as soon as they are accepted. */
  cut(): void {
    this.isCut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  heal(): void {
    this.isCut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private forward(client: Socket): void {
    if (this.isCut) {
      client.destroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(socket);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        this.sockets.delete(socket);
        other.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }
}
