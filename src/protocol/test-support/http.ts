import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";
import { Agent } from "undici";

export interface Received {
  bytes: Buffer;
  headers: IncomingHttpHeaders;
  method: string;
  url: string;
}

/**
 * A real HTTP server on 127.0.0.1 that records exactly what arrived and counts the connections it accepted;
 * `handler` answers once the request's body has been read.
 */
export async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse, bytes: Buffer) => void,
) {
  const received: Received[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const bytes = Buffer.concat(chunks);
      received.push({ bytes, headers: req.headers, method: req.method ?? "", url: req.url ?? "" });
      handler(req, res, bytes);
    });
  });
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/incoming/sms`,
    /** The same server at another path. */
    at: (path: string) => new URL(`http://127.0.0.1:${port}${path}`),
    received,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** A loopback URL where nothing listens any more (a server started and closed): connecting is refused. */
export async function closedServerUrl(): Promise<string> {
  const srv = await startServer(() => {});
  await srv.close();
  return srv.url;
}

/** Keep-alive agents for one test file, closed after its tests. Call at the file's top level. */
export function testAgents(): (connections?: number) => Agent {
  const agents: Agent[] = [];
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
  });
  return (connections) => {
    const a = new Agent({ keepAliveTimeout: 10_000, ...(connections ? { connections } : {}) });
    agents.push(a);
    return a;
  };
}
