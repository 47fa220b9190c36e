// Listener errors with stable codes and messages that name the socket and the fix.

export class ListenError extends Error {
  readonly code: string;
  constructor(protocol: string, address: string, port: number, cause: NodeJS.ErrnoException) {
    const where = `${protocol} ${address.includes(':') ? `[${address}]` : address}:${port}`;
    let hint = '';
    if (cause.code === 'EADDRINUSE')
      hint = ': address already in use (another process is listening there; stop it or pick another port)';
    else if (cause.code === 'EACCES')
      hint = ': permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    else if (cause.code === 'EADDRNOTAVAIL') hint = ': address not available on this host';
    else hint = `: ${cause.message}`;
    super(`cannot listen on ${where}${hint}`);
    this.name = 'ListenError';
    this.code = cause.code ?? 'ELISTEN';
  }
}
