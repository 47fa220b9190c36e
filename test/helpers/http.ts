// A bounded plain HTTP GET for tests of the admin server (no keep-alive, 2 s timeout unless told).
import { request as httpRequest } from 'node:http';

export interface HttpReply {
  status: number;
  contentType: string;
  body: string;
}

export function httpGet(
  port: number,
  path: string,
  host = '127.0.0.1',
  timeoutMs = 2000,
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
