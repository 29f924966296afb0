// Connects the official @microsoft/signalr client to an IFCB hub, registers as a
// client of SERIAL, asks for a refresh, and prints what arrives as JSON lines.
// Usage: node ifcb_client.js URL SERIAL [COUNT]
"use strict";
const signalR = require("@microsoft/signalr");

const [url, serial, countText] = process.argv.slice(2);
const want = Number(countText || "1");

async function main() {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  let seen = 0;
  const finished = new Promise((resolve) => {
    connection.on("startedAsClient", (who) => {
      console.log(JSON.stringify({ event: "startedAsClient", args: [who] }));
      connection.send("relayMessageToHost", serial, "refresh");
    });
    connection.on("heartbeat", () => {});
    connection.on("messageRelayed", (sender, source, seqno, msg) => {
      console.log(JSON.stringify({ event: "messageRelayed", args: [sender, source, seqno, msg] }));
      seen += 1;
      if (seen >= want) resolve();
    });
  });
  await connection.start();
  console.log(JSON.stringify({ event: "connected", id: connection.connectionId }));
  const echo = await connection.invoke("startAsClient", serial);
  console.log(JSON.stringify({ event: "invoked", result: echo === undefined ? null : echo }));
  await finished;
  await connection.stop();
  console.log(JSON.stringify({ event: "stopped" }));
}

main().catch((err) => {
  console.log(JSON.stringify({ event: "error", message: String(err) }));
  process.exit(1);
});
