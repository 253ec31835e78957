// k6 load on the KvDB Admin API (make k6-admin-bench): each virtual user reads the shard
// list, the cluster summary and the node list in turn.
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 50),
  duration: `${__ENV.SECONDS || 10}s`,
};

const admin = `http://${__ENV.ADMIN || '127.0.0.1:7381'}`;

export default function () {
  for (const path of ['/admin/shards', '/admin/cluster', '/admin/nodes']) {
    const r = http.get(admin + path);
    check(r, { [`${path} 200`]: (res) => res.status === 200 });
  }
}
