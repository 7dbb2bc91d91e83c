/*
 * racksmith's native TFTP sender: the data phase of one read transfer (RFC 1350, 2347-2349, 7440),
 * on a thread of its own with blocking system calls, as tftpd-hpa does it in a process of its own.
 * JavaScript opens the file, negotiates the options and builds the OACK and error packets; this
 * code sends the blocks, waits for ACKs and retransmits. Rules (the same as the JavaScript sender
 * in src/modules/boot/tftp/tftp-server.ts):
 *   - only an ACK that moves the window counts; a duplicate or stale ACK changes nothing, so there
 *     is no Sorcerer's Apprentice storm; only the sender's own timer retransmits;
 *   - an ACK inside the window restarts the window after the ACKed block (RFC 7440);
 *   - the timer fires `timeout` after the window last moved; each retransmission doubles it (up to
 *     a maximum), progress brings it back to the base; after `retries` retransmissions of one
 *     window the transfer is given up with the timeout error packet;
 *   - the socket is connected to the client (its TID): the kernel hands it no other sender's packets;
 *   - a well-formed ERROR packet from the client ends the transfer; anything else is ignored.
 * Per block in lock-step: one sendmsg() and one blocking recv() (SO_RCVTIMEO is the timer).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum outcome { DONE = 0, TIMEOUT = 1, CLIENT_ERROR = 2, READ_ERROR = 3, ABORTED = 4 };
static const char *OUTCOMES[] = {"done", "timeout", "client-error", "read-error", "aborted"};

#define READ_CHUNK (256 * 1024)

/* Transfers running, and those spinning now; spinning only pays while few transfers compete for the cores. */
static int running = 0;
static int spinners = 0;
static int max_spinners = 1;
#define RECV_MAX 1024

typedef struct {
  int sock;
  int file_fd;          /* -1: the bytes are in `data` */
  const uint8_t *data;  /* a Buffer kept alive by data_ref */
  napi_ref data_ref;
  uint64_t size;
  uint32_t blksize, windowsize;
  int base_timeout_ms, max_backoff_ms, max_retries;
  int spin_us;
  int64_t wait_ms;
  uint8_t *oack, *timeout_packet, *read_error_packet;
  size_t oack_len, timeout_packet_len, read_error_packet_len;
  /* read-ahead for file_fd */
  uint8_t *chunk;
  uint64_t chunk_offset;
  size_t chunk_len;
  /* results */
  int outcome;
  uint64_t base;
  uint32_t retransmits;
  int abort_requested; /* set by the main thread (__atomic), read by the transfer's thread */
  int ended;  /* main thread: the result was delivered and the socket closed */
  napi_threadsafe_function tsfn;
  napi_ref keep; /* the JS handle, held until the result is delivered (its finalizer frees this) */
} transfer_t;

static int aborted(transfer_t *t) {
  return __atomic_load_n(&t->abort_requested, __ATOMIC_SEQ_CST);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a blocking recv() waits (SO_RCVTIMEO), set only when it changes. */
static void set_wait(transfer_t *t, int64_t ms) {
  if (ms < 1) ms = 1;
  if (ms == t->wait_ms) return;
  t->wait_ms = ms;
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  setsockopt(t->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Block n's bytes (1-based): a pointer and a length, or -1 on a read error. */
static int block_bytes(transfer_t *t, uint64_t n, const uint8_t **out, size_t *len) {
  uint64_t offset = (n - 1) * (uint64_t)t->blksize;
  uint64_t left = offset < t->size ? t->size - offset : 0;
  *len = left < t->blksize ? (size_t)left : t->blksize;
  if (!*len) {
    *out = NULL;
    return 0;
  }
  if (t->file_fd < 0) {
    *out = t->data + offset;
    return 0;
  }
  if (offset < t->chunk_offset || offset + *len > t->chunk_offset + t->chunk_len) {
    size_t want = READ_CHUNK;
    if ((uint64_t)t->blksize * t->windowsize > want) want = (size_t)t->blksize * t->windowsize;
    if (want > left) want = (size_t)left;
    size_t got = 0;
    while (got < want) {
      ssize_t r = pread(t->file_fd, t->chunk + got, want - got, (off_t)(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return -1; /* an error, or the file shrank under us */
      got += (size_t)r;
    }
    t->chunk_offset = offset;
    t->chunk_len = got;
  }
  *out = t->chunk + (offset - t->chunk_offset);
  return 0;
}

static void send_packet(transfer_t *t, const uint8_t *p, size_t len) {
  while (send(t->sock, p, len, 0) < 0 && errno == EINTR) {
  }
}

/* Sends the window's blocks from *next on. -1 on a read error. */
static int pump(transfer_t *t, uint64_t *next, uint64_t *sent, uint64_t blocks) {
  uint64_t last = t->base + t->windowsize - 1;
  if (last > blocks) last = blocks;
  for (; *next <= last; (*next)++) {
    const uint8_t *data;
    size_t len;
    if (block_bytes(t, *next, &data, &len) < 0) return -1;
    uint8_t head[4] = {0, 3, (uint8_t)((*next >> 8) & 0xff), (uint8_t)(*next & 0xff)};
    struct iovec iov[2] = {{head, 4}, {(void *)data, len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    while (sendmsg(t->sock, &msg, 0) < 0 && errno == EINTR) {
    }
    if (*next > *sent) *sent = *next;
  }
  return 0;
}

static void run(transfer_t *t) {
  uint64_t blocks = t->size / t->blksize + 1;
  uint64_t next = 1, sent = 0;
  int retries = 0;
  int timeout_ms = t->base_timeout_ms;
  int waiting_oack = t->oack != NULL;
  uint8_t buf[RECV_MAX];
  t->base = 1;

  int64_t last_send = now_ms();
  set_wait(t, timeout_ms);
  if (waiting_oack) send_packet(t, t->oack, t->oack_len);
  else if (pump(t, &next, &sent, blocks) < 0) goto read_error;

  for (;;) {
    ssize_t n = -1;
    errno = EAGAIN;
    int may_spin = t->spin_us > 0 && __atomic_load_n(&running, __ATOMIC_RELAXED) <= max_spinners;
    if (may_spin && __atomic_add_fetch(&spinners, 1, __ATOMIC_RELAXED) <= max_spinners) {
      /* Spin a little before sleeping: the ACK usually comes within microseconds on a fast link,
         and waking a sleeping thread costs more than that. Only while at most max_spinners
         transfers run: with more, a spinning thread takes a core another transfer could use. */
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      for (;;) {
        n = recv(t->sock, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || aborted(t)) break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000 >= t->spin_us) break;
      }
      __atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
    } else if (may_spin) {
      __atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !aborted(t)) n = recv(t->sock, buf, sizeof buf, MSG_TRUNC);
    if (aborted(t)) {
      t->outcome = ABORTED;
      return;
    }
    int progressed = 0;
    if (n >= 4 && n <= RECV_MAX) {
      uint16_t op = (uint16_t)(buf[0] << 8 | buf[1]);
      uint16_t block16 = (uint16_t)(buf[2] << 8 | buf[3]);
      if (op == 4 && n == 4) {
        if (waiting_oack) {
          if (block16 == 0) {
            waiting_oack = 0;
            progressed = 1;
          }
        } else {
          /* The absolute block in [base, sent] this 16-bit number names, if any. */
          uint64_t acked = 0;
          for (uint64_t b = sent; b >= t->base && b > 0; b--)
            if ((b & 0xffff) == block16) {
              acked = b;
              break;
            }
          if (acked) {
            progressed = 1;
            if (acked == blocks) {
              t->base = blocks + 1;
              t->outcome = DONE;
              return;
            }
            t->base = acked + 1;
            if (acked < sent) next = t->base;
            else if (next < t->base) next = t->base;
          }
        }
      } else if (op == 5 && n >= 5 && buf[n - 1] == 0) {
        t->outcome = CLIENT_ERROR;
        return;
      }
    }
    if (progressed) {
      retries = 0;
      timeout_ms = t->base_timeout_ms;
      set_wait(t, timeout_ms);
      if (pump(t, &next, &sent, blocks) < 0) goto read_error;
      last_send = now_ms();
      continue;
    }
    /* Nothing moved: a timeout, or a packet that does not count. */
    int64_t due = last_send + timeout_ms - now_ms();
    if (due > 0) {
      /* Wait only for what is left of the timer: it does not restart on a packet that does not count. */
      set_wait(t, due);
      continue;
    }
    if (++retries > t->max_retries) {
      send_packet(t, t->timeout_packet, t->timeout_packet_len);
      t->outcome = TIMEOUT;
      return;
    }
    t->retransmits++;
    timeout_ms = timeout_ms * 2 > t->max_backoff_ms ? t->max_backoff_ms : timeout_ms * 2;
    set_wait(t, timeout_ms);
    last_send = now_ms();
    if (waiting_oack) send_packet(t, t->oack, t->oack_len);
    else {
      next = t->base;
      if (pump(t, &next, &sent, blocks) < 0) goto read_error;
    }
  }
read_error:
  send_packet(t, t->read_error_packet, t->read_error_packet_len);
  t->outcome = READ_ERROR;
}

static void *thread_main(void *arg) {
  transfer_t *t = arg;
  __atomic_add_fetch(&running, 1, __ATOMIC_RELAXED);
  run(t);
  __atomic_sub_fetch(&running, 1, __ATOMIC_RELAXED);
  napi_call_threadsafe_function(t->tsfn, NULL, napi_tsfn_blocking);
  napi_release_threadsafe_function(t->tsfn, napi_tsfn_release);
  return NULL;
}

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "tftp_sender: " #call); \
      return NULL;                                         \
    }                                                      \
  } while (0)

/* On the main thread once the transfer's thread is done: close the socket, hand over the result. */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  transfer_t *t = context;
  close(t->sock);
  t->ended = 1;
  if (!env) return;
  if (t->data_ref) {
    napi_delete_reference(env, t->data_ref);
    t->data_ref = NULL;
  }
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, OUTCOMES[t->outcome], NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, result, "outcome", v);
  napi_create_double(env, (double)(t->base - 1), &v);
  napi_set_named_property(env, result, "acked", v);
  napi_create_uint32(env, t->retransmits, &v);
  napi_set_named_property(env, result, "retransmits", v);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, callback, 1, &result, NULL);
  napi_delete_reference(env, t->keep);
  t->keep = NULL;
}

static void finalize_transfer(napi_env env, void *data, void *hint) {
  transfer_t *t = data;
  free(t->chunk);
  free(t->oack);
  free(t->timeout_packet);
  free(t->read_error_packet);
  free(t);
}

static int get_int(napi_env env, napi_value obj, const char *name, int64_t *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

static int get_bytes(napi_env env, napi_value obj, const char *name, uint8_t **out, size_t *len) {
  napi_value v;
  napi_valuetype type;
  *out = NULL;
  *len = 0;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &type) != napi_ok) return -1;
  if (type == napi_undefined || type == napi_null) return 0;
  void *p;
  if (napi_get_buffer_info(env, v, &p, len) != napi_ok) return -1;
  *out = malloc(*len ? *len : 1);
  if (!*out) return -1;
  memcpy(*out, p, *len);
  return 0;
}

static int get_string(napi_env env, napi_value obj, const char *name, char *out, size_t cap) {
  napi_value v;
  size_t len;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  return napi_get_value_string_utf8(env, v, out, cap, &len) == napi_ok ? 0 : -1;
}

/*
 * start({ bindAddress, clientAddress, clientPort, fd | data, size, blksize, windowsize, timeoutMs,
 *         maxBackoffMs, retries, oack?, timeoutPacket, readErrorPacket }, callback) -> handle
 * callback({ outcome, acked, retransmits }) is called once, on the main thread.
 */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "start(options, callback)");
    return NULL;
  }
  napi_value o = argv[0];
  transfer_t *t = calloc(1, sizeof *t);
  if (!t) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  t->sock = -1;
  t->file_fd = -1;
  int64_t spin_us = 0;
  napi_value spin_v;
  napi_valuetype spin_type;
  if (napi_get_named_property(env, o, "spinUs", &spin_v) == napi_ok && napi_typeof(env, spin_v, &spin_type) == napi_ok && spin_type == napi_number)
    napi_get_value_int64(env, spin_v, &spin_us);
  int64_t port, size, blksize, windowsize, timeout_ms, backoff, retries, fd = -1;
  char bind_addr[64], client_addr[64];
  int bad = get_string(env, o, "bindAddress", bind_addr, sizeof bind_addr) || get_string(env, o, "clientAddress", client_addr, sizeof client_addr) ||
            get_int(env, o, "clientPort", &port) || get_int(env, o, "size", &size) || get_int(env, o, "blksize", &blksize) ||
            get_int(env, o, "windowsize", &windowsize) || get_int(env, o, "timeoutMs", &timeout_ms) || get_int(env, o, "maxBackoffMs", &backoff) ||
            get_int(env, o, "retries", &retries) || get_bytes(env, o, "oack", &t->oack, &t->oack_len) ||
            get_bytes(env, o, "timeoutPacket", &t->timeout_packet, &t->timeout_packet_len) ||
            get_bytes(env, o, "readErrorPacket", &t->read_error_packet, &t->read_error_packet_len);
  if (!bad && (blksize < 8 || blksize > 65464 || windowsize < 1 || windowsize > 65535 || size < 0 || port < 1 || port > 65535 || timeout_ms < 1 ||
               !t->timeout_packet || !t->read_error_packet))
    bad = 1;
  napi_value data_v;
  napi_valuetype data_type = napi_undefined;
  if (!bad && napi_get_named_property(env, o, "data", &data_v) == napi_ok) napi_typeof(env, data_v, &data_type);
  if (!bad && data_type == napi_object) {
    void *p;
    size_t len;
    if (napi_get_buffer_info(env, data_v, &p, &len) != napi_ok || (uint64_t)size > len) bad = 1;
    else {
      t->data = p;
      napi_create_reference(env, data_v, 1, &t->data_ref);
    }
  } else if (!bad) {
    bad = get_int(env, o, "fd", &fd) || fd < 0;
  }
  struct sockaddr_in local = {.sin_family = AF_INET}, peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (!bad && (inet_pton(AF_INET, bind_addr, &local.sin_addr) != 1 || inet_pton(AF_INET, client_addr, &peer.sin_addr) != 1)) bad = 1;
  if (bad) {
    if (t->data_ref) napi_delete_reference(env, t->data_ref);
    finalize_transfer(env, t, NULL);
    napi_throw_type_error(env, "ERR_TFTP_SENDER_OPTIONS", "tftp_sender: bad options");
    return NULL;
  }
  t->size = (uint64_t)size;
  t->blksize = (uint32_t)blksize;
  t->windowsize = (uint32_t)windowsize;
  t->base_timeout_ms = (int)timeout_ms;
  t->max_backoff_ms = (int)backoff;
  t->max_retries = (int)retries;
  t->spin_us = spin_us > 0 && spin_us <= 10000 ? (int)spin_us : 0;
  t->file_fd = (int)fd;
  if (t->file_fd >= 0) {
    size_t cap = READ_CHUNK > (size_t)blksize * windowsize ? READ_CHUNK : (size_t)blksize * windowsize;
    t->chunk = malloc(cap);
  }

  const char *failed = NULL;
  int err = 0;
  t->sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (t->sock < 0) failed = "socket";
  else if (bind(t->sock, (struct sockaddr *)&local, sizeof local) < 0) failed = "bind";
  else if (connect(t->sock, (struct sockaddr *)&peer, sizeof peer) < 0) failed = "connect";
  else if (t->file_fd >= 0 && !t->chunk) failed = "malloc";
  if (failed) {
    err = errno;
    if (t->sock >= 0) close(t->sock);
    if (t->data_ref) napi_delete_reference(env, t->data_ref);
    finalize_transfer(env, t, NULL);
    char message[128];
    snprintf(message, sizeof message, "tftp_sender: %s: %s", failed, strerror(err));
    napi_throw_error(env, NULL, message);
    return NULL;
  }

  napi_value handle, name;
  CHECK(env, napi_create_external(env, t, finalize_transfer, NULL, &handle));
  CHECK(env, napi_create_string_utf8(env, "tftp-transfer", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, t, deliver, &t->tsfn));
  /* The handle (and so the transfer) must outlive the thread: held until the result is delivered. */
  CHECK(env, napi_create_reference(env, handle, 1, &t->keep));

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  err = pthread_create(&thread, &attr, thread_main, t);
  pthread_attr_destroy(&attr);
  if (err) {
    napi_release_threadsafe_function(t->tsfn, napi_tsfn_abort);
    close(t->sock);
    t->ended = 1;
    napi_delete_reference(env, t->keep);
    napi_throw_error(env, NULL, "tftp_sender: pthread_create failed");
    return NULL;
  }
  return handle;
}

/* abort(handle): ends a running transfer (its callback then says "aborted"). */
static napi_value abort_transfer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "abort(handle)");
    return NULL;
  }
  transfer_t *t = p;
  if (!t->ended && !aborted(t)) {
    __atomic_store_n(&t->abort_requested, 1, __ATOMIC_SEQ_CST);
    /* Wakes the thread's blocking recv() (a connected UDP socket): it sees the flag and ends. */
    shutdown(t->sock, SHUT_RDWR);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  max_spinners = cpus > 1 ? (int)(cpus - 1) : 0; /* one core: never spin */
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, abort_transfer, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
