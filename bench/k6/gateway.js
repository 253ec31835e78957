// k6 load on the KvDB gateway's gRPC API (make k6-gateway-bench): each virtual user puts
// and then strongly gets keys spread over 10,000 names, 100-byte values.
import grpc from 'k6/net/grpc';
import encoding from 'k6/encoding';
import { check } from 'k6';

const client = new grpc.Client();
client.load(['../../proto'], 'kvdb/v1/gateway.proto');

export const options = {
  vus: Number(__ENV.VUS || 50),
  duration: `${__ENV.SECONDS || 10}s`,
};

const value = encoding.b64encode('v'.repeat(100));

export default function () {
  if (__ITER === 0) {
    client.connect(__ENV.GATEWAY || '127.0.0.1:7379', { plaintext: true });
  }
  const key = encoding.b64encode(`bench-${Math.floor(Math.random() * 10000)}`);
  const put = client.invoke('kvdb.v1.KvGateway/Put', { key, value });
  check(put, { 'put ok': (r) => r && r.status === grpc.StatusOK });
  const get = client.invoke('kvdb.v1.KvGateway/Get', { key });
  check(get, { 'get ok': (r) => r && r.status === grpc.StatusOK });
}
