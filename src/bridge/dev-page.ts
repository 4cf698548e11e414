import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";

// Two levels under the package root both as src/bridge and dist/bridge, so one relative URL serves both.
const DIR = new URL("../../assets/dev/", import.meta.url);

/** The `smsbridge dev` landing page: the customer phone and the helpdesk inbox side by side. */
export function registerDevPage(app: FastifyInstance, sandboxUrl: string): void {
  const html = readFileSync(new URL("index.html", DIR), "utf8").replaceAll("{{SANDBOX_URL}}", sandboxUrl);
  const css = readFileSync(new URL("style.css", DIR), "utf8");
  app.get("/", (_req, reply) => reply.redirect("/dev/"));
  app.get("/dev", (_req, reply) => reply.redirect("/dev/"));
  app.get("/dev/", (_req, reply) => reply.type("text/html; charset=utf-8").send(html));
  app.get("/dev/style.css", (_req, reply) => reply.type("text/css; charset=utf-8").send(css));
}
