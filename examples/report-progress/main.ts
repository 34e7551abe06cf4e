/**
 * Start the report-progress app from the environment:
 *   node scripts/run-ts.js examples/report-progress/main.ts
 * SWITCHBOARD_API   server API base URL(s), comma-separated (default http://localhost:8080)
 * SWITCHBOARD_API_KEY  the nodes' --api-key (none for --insecure nodes)
 * SWITCHBOARD_WS    WebSocket URL the page connects to (default ws://localhost:8080/ws)
 * PORT              the app's port (default 3000)
 */
import { startReportProgress } from './server.js';

const env = process.env;
const app = await startReportProgress({
  port: Number(env.PORT ?? 3000),
  apiUrls: (env.SWITCHBOARD_API ?? 'http://localhost:8080').split(',').map((s) => s.trim()).filter(Boolean),
  apiKey: env.SWITCHBOARD_API_KEY || undefined,
  wsUrl: env.SWITCHBOARD_WS ?? 'ws://localhost:8080/ws',
});
console.log(`report-progress: open ${app.url}/?user=alice`);
const stop = (): void => void app.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
