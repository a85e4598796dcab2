// NFQUEUE spoken directly over nfnetlink, in batches. Why: the `nfqueue` npm addon makes one
// epoll wake and one recv per packet, one sendmsg per verdict, and builds a twelve-property
// object (with four interface-name lookups) per packet; under load that was most of the
// daemons' CPU. Here each wake drains the socket with recvmmsg (up to batchMax packets), makes
// ONE call into JS with the batch, and the verdicts given meanwhile leave in one sendmsg (many
// netlink messages in one datagram; the kernel handles each in turn).
//
// JS sees: new Queue(queue, rcvbufBytes, batchMax, maxQueueLen, onBatch(count, data)), where for packet i
// meta[4i..4i+3] = id, mark, offset, length of the IP packet in `data` (a Buffer of this batch
// only: the packets are copies, never views of our receive buffers); verdict(id, verdict,
// mark|null, packet|null) queues a verdict; flush() sends the queued ones; close(); stats().
//
// Fail closed: we never set NFQA_CFG_F_FAIL_OPEN (and clear it explicitly), so without a reader
// the kernel drops what the rules queue, and closing the socket drops what is still queued.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// One received datagram: a packet of up to 65535 bytes plus its netlink headers and attributes.
#define SLOT_BYTES (65536 + 4096)
#define BATCH_LIMIT 1024
// Largest kernel queue length we ask for: each queued packet holds an skb in kernel memory.
#define MAX_QUEUE_LEN (1u << 20)
// Largest payload one NFQA_PAYLOAD attribute can carry (nla_len is 16 bits).
#define MAX_PAYLOAD (65535 - NLA_HDRLEN)
// Queued verdicts are sent when this much is pending (and at the end of every batch).
#define PENDING_MAX (256 * 1024)
#define QUEUE_MSG(t) ((NFNL_SUBSYS_QUEUE << 8) | (t))

typedef struct {
  napi_env env;
  int fd;
  uint16_t queue;
  uint32_t batch_max;
  uint32_t max_len;  // packets the kernel holds for us before it drops (NFQA_CFG_QUEUE_MAXLEN)
  uv_poll_t poll;
  int poll_started;  // uv_poll_init succeeded: the handle must be uv_close()d
  int poll_closed;   // ... and its close callback ran
  int closed;
  int finalized;
  napi_ref self;     // strong while open: the queue lives as long as it is bound
  napi_ref on_batch;
  napi_ref meta_ref;
  uint32_t *meta;
  napi_async_context async;
  // receive side: one slot per datagram for recvmmsg, and the packets found in them
  uint8_t *slab;
  struct mmsghdr *msgs;
  struct iovec *iov;
  const uint8_t **pkt_data;
  // pending verdicts: whole netlink messages back to back
  uint8_t *pend;
  size_t pend_len;
  size_t pend_cap;
  // counters (doubles: they reach JS as numbers)
  double packets, batches, wakes, verdicts, sends, errors;
  int last_error;
} Queue;

static void free_queue(Queue *q) {
  free(q->slab);
  free(q->msgs);
  free(q->iov);
  free(q->pkt_data);
  free(q->pend);
  free(q);
}

static void on_poll_closed(uv_handle_t *h) {
  Queue *q = (Queue *)h->data;
  q->poll_closed = 1;
  if (q->finalized) free_queue(q);
}

// ---- netlink message building ----

static uint8_t *put_attr(uint8_t *p, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = (struct nlattr *)p;
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len > 0) memcpy(p + NLA_HDRLEN, data, len);
  size_t padded = NLA_ALIGN(NLA_HDRLEN + len);
  memset(p + NLA_HDRLEN + len, 0, padded - NLA_HDRLEN - len);
  return p + padded;
}

// Starts a queue message at p; returns where its attributes go.
static uint8_t *put_header(uint8_t *p, uint16_t type, uint16_t flags, uint32_t seq, uint16_t queue) {
  struct nlmsghdr *h = (struct nlmsghdr *)p;
  h->nlmsg_type = QUEUE_MSG(type);
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq;
  h->nlmsg_pid = 0;
  struct nfgenmsg *g = (struct nfgenmsg *)(p + NLMSG_HDRLEN);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
  return p + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
}

static size_t verdict_size(int with_mark, size_t payload_len, int with_payload) {
  return NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)) + NLA_ALIGN(NLA_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr)) +
         (with_mark ? NLA_ALIGN(NLA_HDRLEN + 4) : 0) + (with_payload ? NLA_ALIGN(NLA_HDRLEN + payload_len) : 0);
}

static void append_verdict(Queue *q, uint32_t id, uint32_t verdict, int with_mark, uint32_t mark, const uint8_t *payload,
                           size_t payload_len, int with_payload) {
  uint8_t *start = q->pend + q->pend_len;
  uint8_t *p = put_header(start, NFQNL_MSG_VERDICT, 0, 0, q->queue);
  struct nfqnl_msg_verdict_hdr vh = {htonl(verdict), htonl(id)};
  p = put_attr(p, NFQA_VERDICT_HDR, &vh, sizeof vh);
  if (with_mark) {
    uint32_t m = htonl(mark);
    p = put_attr(p, NFQA_MARK, &m, 4);
  }
  if (with_payload) p = put_attr(p, NFQA_PAYLOAD, payload, payload_len);
  ((struct nlmsghdr *)start)->nlmsg_len = (uint32_t)(p - start);
  q->pend_len += (size_t)(p - start);
}

// Sends every pending verdict in one datagram. Returns 0, or the errno of a send that kept
// failing; the verdicts then stay pending for the next flush (none is ever dropped here).
static int flush_pending(Queue *q) {
  if (q->pend_len == 0 || q->fd < 0) return 0;
  for (int tries = 0;; tries++) {
    ssize_t r = send(q->fd, q->pend, q->pend_len, 0);
    if (r >= 0) break;
    int e = errno;
    if (e == EINTR) continue;
    // The kernel could not allocate the message: short waits, then give up loudly.
    if ((e == ENOBUFS || e == ENOMEM || e == EAGAIN) && tries < 100) {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
      continue;
    }
    q->errors++;
    q->last_error = e;
    return e;
  }
  q->sends++;
  q->pend_len = 0;
  return 0;
}

// ---- receiving ----

static void fatal_to_js(napi_env env) {
  napi_value e;
  if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
}

// Hands n packets (pointers into the slab) to JS as one call.
static void emit_batch(Queue *q, uint32_t n) {
  napi_env env = q->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) total += q->meta[4 * i + 3];
  void *data = NULL;
  napi_value buf, cb, self, argv[2];
  if (napi_create_buffer(env, total, &data, &buf) != napi_ok) {
    fatal_to_js(env);
    napi_close_handle_scope(env, scope);
    return;
  }
  for (uint32_t i = 0; i < n; i++) {
    memcpy((uint8_t *)data + q->meta[4 * i + 2], q->pkt_data[i], q->meta[4 * i + 3]);
  }
  napi_create_uint32(env, n, &argv[0]);
  argv[1] = buf;
  napi_get_reference_value(env, q->on_batch, &cb);
  napi_get_reference_value(env, q->self, &self);
  q->batches++;
  q->packets += n;
  if (napi_make_callback(env, q->async, self, cb, 2, argv, NULL) != napi_ok) fatal_to_js(env);
  napi_close_handle_scope(env, scope);
}

// Reads id, mark and payload from a packet message; 0 when it has no id (then no verdict is
// possible; the kernel always sends one).
static int parse_packet(const struct nlmsghdr *h, uint32_t *id, uint32_t *mark, const uint8_t **payload, uint32_t *plen) {
  size_t attrs_at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  if (h->nlmsg_len < attrs_at) return 0;
  const uint8_t *p = (const uint8_t *)h + attrs_at;
  size_t rem = h->nlmsg_len - attrs_at;
  int have_id = 0;
  *mark = 0;
  *payload = NULL;
  *plen = 0;
  while (rem >= NLA_HDRLEN) {
    const struct nlattr *a = (const struct nlattr *)p;
    if (a->nla_len < NLA_HDRLEN || a->nla_len > rem) break;
    const uint8_t *d = p + NLA_HDRLEN;
    size_t dlen = a->nla_len - NLA_HDRLEN;
    uint32_t v;
    switch (a->nla_type & NLA_TYPE_MASK) {
      case NFQA_PACKET_HDR:
        if (dlen >= 4) {
          memcpy(&v, d, 4);
          *id = ntohl(v);
          have_id = 1;
        }
        break;
      case NFQA_MARK:
        if (dlen >= 4) {
          memcpy(&v, d, 4);
          *mark = ntohl(v);
        }
        break;
      case NFQA_PAYLOAD:
        *payload = d;
        *plen = (uint32_t)dlen;
        break;
    }
    size_t step = NLA_ALIGN(a->nla_len);
    if (step >= rem) break;
    p += step;
    rem -= step;
  }
  return have_id;
}

// Walks the netlink messages of one datagram: packets go to meta/pkt_data (emitting a batch
// when it is full), error acks (a verdict for an unknown id, say) are counted.
static void parse_datagram(Queue *q, const uint8_t *buf, int len, uint32_t *n, size_t *offset) {
  int left = len;  // int: NLMSG_NEXT may step past the end, and NLMSG_OK must see that as negative
  for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left) && !q->closed; h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
        int err = *(const int *)NLMSG_DATA(h);
        if (err != 0) {
          q->errors++;
          q->last_error = -err;
        }
      }
      continue;
    }
    uint32_t id, mark, plen;
    const uint8_t *payload;
    if (h->nlmsg_type != QUEUE_MSG(NFQNL_MSG_PACKET) || !parse_packet(h, &id, &mark, &payload, &plen)) continue;
    uint32_t i = *n;
    q->meta[4 * i] = id;
    q->meta[4 * i + 1] = mark;
    q->meta[4 * i + 2] = (uint32_t)*offset;
    q->meta[4 * i + 3] = plen;
    q->pkt_data[i] = payload;
    *offset += plen;
    if (++*n == q->batch_max) {
      emit_batch(q, *n);
      *n = 0;
      *offset = 0;
    }
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  Queue *q = (Queue *)handle->data;
  if (q->closed) return;
  if (status < 0) {
    q->errors++;
    q->last_error = -status;
  }
  q->wakes++;
  uint32_t n = 0;
  size_t offset = 0;
  uint32_t received = 0;
  // Drain up to batch_max datagrams; whatever is left wakes us again on the next loop turn
  // (uv_poll is level-triggered), after timers and other sockets had theirs.
  while (received < q->batch_max && !q->closed) {
    unsigned want = q->batch_max - received;
    for (unsigned i = 0; i < want; i++) {
      q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
      q->msgs[i].msg_hdr.msg_iovlen = 1;
      q->msgs[i].msg_hdr.msg_name = NULL;
      q->msgs[i].msg_hdr.msg_namelen = 0;
      q->msgs[i].msg_hdr.msg_control = NULL;
      q->msgs[i].msg_hdr.msg_controllen = 0;
      q->msgs[i].msg_hdr.msg_flags = 0;
    }
    int got = recvmmsg(q->fd, q->msgs, want, MSG_DONTWAIT, NULL);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        q->errors++;
        q->last_error = errno;
      }
      break;
    }
    // Pointers into the slab stay valid until the next recvmmsg: emit what we have first.
    for (int i = 0; i < got && !q->closed; i++) {
      if (q->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        q->errors++;  // cannot happen with SLOT_BYTES slots; counted if it ever does
        q->last_error = EMSGSIZE;
        continue;
      }
      parse_datagram(q, (const uint8_t *)q->iov[i].iov_base, (int)q->msgs[i].msg_len, &n, &offset);
    }
    if (n > 0 && !q->closed) emit_batch(q, n);
    n = 0;
    offset = 0;
    received += (uint32_t)got;
    if ((unsigned)got < want) break;
  }
  if (!q->closed && flush_pending(q) != 0) {
    // Verdicts the kernel will not take: packets would wait forever. Surface it as an uncaught
    // exception (a daemon exits, and the kernel drops what it queued: fail closed).
    char msg[160];
    snprintf(msg, sizeof msg, "cannot send NFQUEUE %u verdicts: %s", q->queue, strerror(q->last_error));
    napi_handle_scope scope;
    if (napi_open_handle_scope(q->env, &scope) != napi_ok) return;
    napi_throw_error(q->env, NULL, msg);
    fatal_to_js(q->env);
    napi_close_handle_scope(q->env, scope);
  }
}

// ---- opening ----

// When the kernel says EPERM, it is either a missing CAP_NET_ADMIN or another process holding
// the queue: /proc says which.
static int queue_owner(unsigned queue, unsigned *portid) {
  FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
  if (f == NULL) return 0;
  unsigned qn, pid;
  char line[256];
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "%u %u", &qn, &pid) == 2 && qn == queue) {
      *portid = pid;
      found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

static void describe_error(char *out, size_t size, unsigned queue, const char *step, int e) {
  unsigned owner = 0;
  int n = snprintf(out, size, "cannot bind NFQUEUE %u: ", queue);
  if (n < 0 || (size_t)n >= size) return;
  out += n;
  size -= (size_t)n;
  if (e == EPERM && queue_owner(queue, &owner)) {
    snprintf(out, size, "another process holds it (netlink portid %u): stop that process or give this daemon another queue number", owner);
  } else if (e == EPERM || e == EACCES) {
    snprintf(out, size, "it needs CAP_NET_ADMIN: run as root or with AmbientCapabilities=CAP_NET_ADMIN (%s)", strerror(e));
  } else if (e == EBUSY) {
    snprintf(out, size, "another process holds it: stop that process or give this daemon another queue number");
  } else if (e == EPROTONOSUPPORT || e == EAFNOSUPPORT || e == EINVAL || e == EOPNOTSUPP || e == ENOENT) {
    snprintf(out, size, "the kernel has no NFQUEUE support (%s: %s): modprobe nfnetlink_queue (see deploy/modules-load.d)", step, strerror(e));
  } else if (e == EAGAIN || e == EWOULDBLOCK) {
    snprintf(out, size, "the kernel did not answer within 2 s");
  } else {
    snprintf(out, size, "%s failed: %s", step, strerror(e));
  }
}

static void set_buffer(int fd, int force_opt, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) != 0) setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

// Binds the queue: one config message (bind, copy whole packets, the kernel's queue length,
// fail-open and GSO cleared), answered by one ack. Packets that slip in before the ack (queued between bind and the copy
// mode, so possibly without payload) are sent through the hook again (NF_REPEAT).
// Returns 0 or an errno, with `step` naming what failed.
static int bind_queue(Queue *q, const char **step) {
  uint8_t msg[128];
  uint8_t *p = put_header(msg, NFQNL_MSG_CONFIG, NLM_F_ACK, 1, q->queue);
  struct nfqnl_msg_config_cmd cmd = {NFQNL_CFG_CMD_BIND, 0, htons(AF_UNSPEC)};
  p = put_attr(p, NFQA_CFG_CMD, &cmd, sizeof cmd);
  struct nfqnl_msg_config_params params;
  params.copy_range = htonl(0xffff);
  params.copy_mode = NFQNL_COPY_PACKET;
  p = put_attr(p, NFQA_CFG_PARAMS, &params, sizeof params);
  uint32_t max_len = htonl(q->max_len);
  p = put_attr(p, NFQA_CFG_QUEUE_MAXLEN, &max_len, 4);
  uint32_t mask = htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO), flags = 0;
  p = put_attr(p, NFQA_CFG_MASK, &mask, 4);
  p = put_attr(p, NFQA_CFG_FLAGS, &flags, 4);
  ((struct nlmsghdr *)msg)->nlmsg_len = (uint32_t)(p - msg);
  *step = "sending the bind request";
  if (send(q->fd, msg, (size_t)(p - msg), 0) < 0) return errno;
  *step = "reading the kernel's answer";
  for (;;) {
    ssize_t r = recv(q->fd, q->slab, SLOT_BYTES, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int left = (int)r;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)q->slab; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == 1 && h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
        int err = *(const int *)NLMSG_DATA(h);
        if (err != 0) {
          *step = "binding the queue";
          return -err;
        }
        return flush_pending(q);
      }
      uint32_t id, mark, plen;
      const uint8_t *payload;
      if (h->nlmsg_type == QUEUE_MSG(NFQNL_MSG_PACKET) && parse_packet(h, &id, &mark, &payload, &plen) &&
          q->pend_len + verdict_size(0, 0, 0) <= q->pend_cap) {
        append_verdict(q, id, NF_REPEAT, 0, 0, NULL, 0, 0);
      }
    }
  }
}

static Queue *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "not an NFQUEUE handle");
    return NULL;
  }
  return (Queue *)data;
}

// Stops reading and closes the socket (the kernel then drops whatever is still queued).
static void close_queue(Queue *q) {
  if (q->closed) return;
  q->closed = 1;
  if (q->poll_started) {
    uv_poll_stop(&q->poll);
    uv_close((uv_handle_t *)&q->poll, on_poll_closed);
  }
  if (q->fd >= 0) close(q->fd);
  q->fd = -1;
}

static void env_cleanup(void *arg) {
  close_queue((Queue *)arg);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  Queue *q = (Queue *)data;
  if (!q->closed) napi_remove_env_cleanup_hook(env, env_cleanup, q);
  close_queue(q);
  if (q->on_batch != NULL) napi_delete_reference(env, q->on_batch);
  if (q->meta_ref != NULL) napi_delete_reference(env, q->meta_ref);
  if (q->async != NULL) napi_async_destroy(env, q->async);
  q->finalized = 1;
  if (!q->poll_started || q->poll_closed) free_queue(q);
}

// new Queue(queue, rcvbufBytes, batchMax, maxQueueLen, onBatch)
static napi_value queue_new(napi_env env, napi_callback_info info) {
  static const char usage[] = "new Queue(queue 0..65535, rcvbufBytes, batchMax 1..1024, maxQueueLen 1..1048576, onBatch(count, data))";
  size_t argc = 5;
  napi_value argv[5], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok || argc != 5) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  uint32_t queue, rcvbuf, batch, max_len;
  napi_valuetype t;
  if (napi_get_value_uint32(env, argv[0], &queue) != napi_ok || queue > 65535 || napi_get_value_uint32(env, argv[1], &rcvbuf) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &batch) != napi_ok || batch < 1 || batch > BATCH_LIMIT || napi_get_value_uint32(env, argv[3], &max_len) != napi_ok ||
      max_len < 1 || max_len > MAX_QUEUE_LEN || napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  Queue *q = (Queue *)calloc(1, sizeof(Queue));
  if (q == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  q->env = env;
  q->fd = -1;
  q->queue = (uint16_t)queue;
  q->batch_max = batch;
  q->max_len = max_len;
  q->slab = (uint8_t *)malloc((size_t)batch * SLOT_BYTES);
  q->msgs = (struct mmsghdr *)calloc(batch, sizeof(struct mmsghdr));
  q->iov = (struct iovec *)calloc(batch, sizeof(struct iovec));
  q->pkt_data = (const uint8_t **)calloc(batch, sizeof(uint8_t *));
  q->pend = (uint8_t *)malloc(PENDING_MAX);
  q->pend_cap = PENDING_MAX;
  if (q->slab == NULL || q->msgs == NULL || q->iov == NULL || q->pkt_data == NULL || q->pend == NULL) {
    free_queue(q);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < batch; i++) {
    q->iov[i].iov_base = q->slab + (size_t)i * SLOT_BYTES;
    q->iov[i].iov_len = SLOT_BYTES;
  }

  const char *step = "creating the netlink socket";
  int e = 0;
  q->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (q->fd < 0) e = errno;
  if (e == 0) {
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK};
    step = "binding the netlink socket";
    if (bind(q->fd, (struct sockaddr *)&addr, sizeof addr) != 0) e = errno;
  }
  if (e == 0) {
    int one = 1;
    // Overruns drop packets (fail closed) instead of erroring the socket.
    setsockopt(q->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    // Error acks for verdicts carry only the header, not the packet we sent.
    setsockopt(q->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    set_buffer(q->fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)(rcvbuf > (1u << 30) ? (1u << 30) : rcvbuf));
    set_buffer(q->fd, SO_SNDBUFFORCE, SO_SNDBUF, PENDING_MAX);
    // The kernel refuses datagrams above sk_sndbuf - 32: keep a full pending buffer below that.
    int sndbuf = 0;
    socklen_t sl = sizeof sndbuf;
    if (getsockopt(q->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0 && sndbuf - 64 < (int)q->pend_cap) q->pend_cap = sndbuf > 64 ? (size_t)(sndbuf - 64) : 0;
    if (q->pend_cap < verdict_size(1, MAX_PAYLOAD, 1)) {
      step = "sizing the send buffer";
      e = ENOBUFS;
    }
  }
  if (e == 0) {
    struct timeval tv = {2, 0};
    setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    e = bind_queue(q, &step);
  }
  if (e == 0) {
    step = "making the socket non-blocking";
    int fl = fcntl(q->fd, F_GETFL);
    if (fl < 0 || fcntl(q->fd, F_SETFL, fl | O_NONBLOCK) != 0) e = errno;
  }
  if (e != 0) {
    char msg[320];
    describe_error(msg, sizeof msg, queue, step, e);
    if (q->fd >= 0) close(q->fd);
    free_queue(q);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }

  uv_loop_t *loop = NULL;
  napi_value meta_ab, meta, name;
  void *meta_data = NULL;
  int ok = napi_get_uv_event_loop(env, &loop) == napi_ok && napi_create_arraybuffer(env, (size_t)batch * 16, &meta_data, &meta_ab) == napi_ok &&
           napi_create_typedarray(env, napi_uint32_array, (size_t)batch * 4, meta_ab, 0, &meta) == napi_ok &&
           napi_set_named_property(env, self, "meta", meta) == napi_ok && napi_create_string_utf8(env, "ciphergate:nfqueue", NAPI_AUTO_LENGTH, &name) == napi_ok &&
           napi_async_init(env, self, name, &q->async) == napi_ok && napi_create_reference(env, argv[4], 1, &q->on_batch) == napi_ok &&
           napi_create_reference(env, meta_ab, 1, &q->meta_ref) == napi_ok && napi_wrap(env, self, q, finalize, NULL, NULL) == napi_ok;
  if (!ok) {
    close(q->fd);
    q->fd = -1;
    if (q->on_batch != NULL) napi_delete_reference(env, q->on_batch);
    if (q->meta_ref != NULL) napi_delete_reference(env, q->meta_ref);
    if (q->async != NULL) napi_async_destroy(env, q->async);
    free_queue(q);
    napi_throw_error(env, NULL, "cannot set up the NFQUEUE handle");
    return NULL;
  }
  q->meta = (uint32_t *)meta_data;
  q->poll.data = q;
  if (uv_poll_init_socket(loop, &q->poll, q->fd) == 0) {
    q->poll_started = 1;
    if (uv_poll_start(&q->poll, UV_READABLE, on_readable) == 0) {
      napi_create_reference(env, self, 1, &q->self);
      napi_add_env_cleanup_hook(env, env_cleanup, q);
      return self;
    }
  }
  close_queue(q);  // the finalizer frees q with the object
  napi_throw_error(env, NULL, "cannot poll the NFQUEUE socket");
  return NULL;
}

// verdict(id, verdict, mark | null, packet | null): queued; sent at the end of the batch, by
// flush(), or at once when the pending buffer is full.
static napi_value queue_verdict(napi_env env, napi_callback_info info) {
  static const char usage[] = "verdict(id, verdict 0|1, mark: number | null, packet: Uint8Array | null)";
  size_t argc = 4;
  napi_value argv[4];
  Queue *q = unwrap(env, info, &argc, argv);
  if (q == NULL) return NULL;
  if (q->closed) {
    napi_throw_error(env, NULL, "the NFQUEUE handle is closed");
    return NULL;
  }
  uint32_t id, verdict, mark = 0;
  napi_valuetype mt, pt;
  if (argc != 4 || napi_get_value_uint32(env, argv[0], &id) != napi_ok || napi_get_value_uint32(env, argv[1], &verdict) != napi_ok ||
      (verdict != NF_DROP && verdict != NF_ACCEPT) || napi_typeof(env, argv[2], &mt) != napi_ok || napi_typeof(env, argv[3], &pt) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int with_mark = mt == napi_number;
  if (with_mark && napi_get_value_uint32(env, argv[2], &mark) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int with_payload = pt != napi_null && pt != napi_undefined;
  uint8_t *payload = NULL;
  size_t plen = 0;
  if (with_payload) {
    napi_typedarray_type tt;
    napi_value ab;
    size_t off;
    void *d;
    if (napi_get_typedarray_info(env, argv[3], &tt, &plen, &d, &ab, &off) != napi_ok || tt != napi_uint8_array) {
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    payload = (uint8_t *)d;
    if (plen == 0 || plen > MAX_PAYLOAD) {
      napi_throw_range_error(env, NULL, "verdict: a replaced packet has 1..65531 bytes (65531: the netlink attribute limit)");
      return NULL;
    }
  }
  size_t size = verdict_size(with_mark, plen, with_payload);
  if (q->pend_len + size > q->pend_cap && flush_pending(q) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot send NFQUEUE %u verdicts: %s", q->queue, strerror(q->last_error));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  append_verdict(q, id, verdict, with_mark, mark, payload, plen, with_payload);
  q->verdicts++;
  return NULL;
}

static napi_value queue_flush(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue *q = unwrap(env, info, &argc, NULL);
  if (q == NULL || q->closed) return NULL;
  if (flush_pending(q) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot send NFQUEUE %u verdicts: %s", q->queue, strerror(q->last_error));
    napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

// close(): sends what is pending, stops reading, closes the socket. Idempotent.
static napi_value queue_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue *q = unwrap(env, info, &argc, NULL);
  if (q == NULL || q->closed) return NULL;
  flush_pending(q);  // best effort: the kernel drops whatever it still holds when the socket closes
  napi_remove_env_cleanup_hook(env, env_cleanup, q);
  close_queue(q);
  if (q->self != NULL) {
    napi_delete_reference(env, q->self);
    q->self = NULL;
  }
  return NULL;
}

static void set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

// stats(): counters since open, for tests and diagnostics.
static napi_value queue_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Queue *q = unwrap(env, info, &argc, NULL);
  if (q == NULL) return NULL;
  napi_value o;
  napi_create_object(env, &o);
  set_number(env, o, "packets", q->packets);
  set_number(env, o, "batches", q->batches);
  set_number(env, o, "wakes", q->wakes);
  set_number(env, o, "verdicts", q->verdicts);
  set_number(env, o, "sends", q->sends);
  set_number(env, o, "errors", q->errors);
  set_number(env, o, "lastError", q->last_error);
  set_number(env, o, "pending", (double)q->pend_len);
  return o;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"verdict", NULL, queue_verdict, NULL, NULL, NULL, napi_default_method, NULL},
      {"flush", NULL, queue_flush, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, queue_close, NULL, NULL, NULL, napi_default_method, NULL},
      {"stats", NULL, queue_stats, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Queue", NAPI_AUTO_LENGTH, queue_new, NULL, sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) return NULL;
  napi_set_named_property(env, exports, "Queue", cls);
  return exports;
}
