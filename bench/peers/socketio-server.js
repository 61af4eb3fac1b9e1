// One socket.io 4 server with the Redis adapter. Clients send `join` with a
// room name and get `joined` back. Usage: node socketio-server.js PORT REDIS_URL
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const Redis = require('ioredis');

const [port, redisUrl] = process.argv.slice(2);
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  adapter: createAdapter(pub, sub),
  pingInterval: 60000,
  pingTimeout: 60000,
});
io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack('joined');
  });
});
server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
