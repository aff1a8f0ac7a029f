// A webhook receiver written the way a Node user would write one, verifying
// with the reference standardwebhooks library. It answers 204 when
// wh.verify accepts the request and 400 with the library's error otherwise.
//
// Environment: PORT (loopback port), WEBHOOK_SECRET (whsec_…), NODE_MODULES
// (absolute path of the node_modules holding standardwebhooks).
import { createServer } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_MODULES, "noop.js"));
const { Webhook } = require("standardwebhooks");

const wh = new Webhook(process.env.WEBHOOK_SECRET);

createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const payload = Buffer.concat(chunks).toString("utf8");
    try {
      const msg = wh.verify(payload, req.headers);
      console.log("verified", req.headers["webhook-id"], msg.type);
      res.writeHead(204).end();
    } catch (err) {
      console.log("rejected", req.headers["webhook-id"], String(err));
      res.writeHead(400, { "Content-Type": "text/plain" }).end(String(err));
    }
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
