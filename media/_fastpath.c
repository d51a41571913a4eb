/* The forwarding hot path's two ends, compiled. Sending: build a leg's rewritten RTP packet,
 * keep it in the sender's history, SRTP-protect it and write it to the ICE pair's socket.
 * Receiving: SRTP-unprotect a publisher's packet and parse it into aiortc's RtpPacket.
 *
 * Optional: without this module (no compiler at install time, or `media_fast_path = false`)
 * media/rtp_build.py and DirectRtpSender do the same in Python. The packet bytes are the same
 * in both (tests/media/test_fastpath.py); only the Python calls per packet are saved.
 *
 * libsrtp is pylibsrtp's: its srtp_protect is called through the address cffi gives for it,
 * with the session pylibsrtp created (kept alive by holding the Python session object). The
 * socket is a duplicate of aioice's, written with MSG_DONTWAIT; what the kernel refuses goes
 * to asyncio's bounded buffer through a Python callback (as the Python path sends), and
 * beyond that bound it is dropped and counted rather than queued.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*protect_fn)(void *session, void *packet, int *length);

#define MAX_PLAINTEXT 1500
#define MAX_TRAILER (16 + 128) /* libsrtp's SRTP_MAX_TRAILER_LEN */

/* ---- building one packet ------------------------------------------------------------------ */

typedef struct {
    int b0, b1;
    unsigned long seq, ts, ssrc;
    PyObject *csrc; /* a sequence of ints */
    Py_buffer head, middle, tail, payload;
    Py_ssize_t padding;
    long long vp8_shift; /* -1, or (PictureID offset << 8) | TL0PICIDX offset */
} Parts;

static void parts_release(Parts *p) {
    if (p->head.obj) PyBuffer_Release(&p->head);
    if (p->middle.obj) PyBuffer_Release(&p->middle);
    if (p->tail.obj) PyBuffer_Release(&p->tail);
    if (p->payload.obj) PyBuffer_Release(&p->payload);
}

/* An int in [0, max]; -1 (with an exception set) otherwise. */
static long long bounded(PyObject *value, unsigned long long max, const char *name) {
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    if (v > max) {
        PyErr_Format(PyExc_ValueError, "%s out of range", name);
        return -1;
    }
    return (long long)v;
}

/* b0, b1, seq, ts, ssrc, csrc, head, middle, tail, payload, padding, vp8_shift
 * (args[first:first+12]);
 * out-of-range numbers are refused (ValueError, OverflowError), never truncated. */
static int parts_parse(Parts *p, PyObject *const *args, Py_ssize_t first) {
    memset(p, 0, sizeof(*p));
    long long b0 = bounded(args[first], 0xFF, "b0");
    long long b1 = b0 < 0 ? -1 : bounded(args[first + 1], 0xFF, "b1");
    long long seq = b1 < 0 ? -1 : bounded(args[first + 2], 0xFFFF, "seq");
    long long ts = seq < 0 ? -1 : bounded(args[first + 3], 0xFFFFFFFFULL, "ts");
    long long ssrc = ts < 0 ? -1 : bounded(args[first + 4], 0xFFFFFFFFULL, "ssrc");
    long long padding = ssrc < 0 ? -1 : bounded(args[first + 10], 0xFF, "padding");
    if (padding < 0) return -1;
    if (args[first + 11] == Py_None) {
        p->vp8_shift = -1;
    } else {
        p->vp8_shift = bounded(args[first + 11], 0x7FFFFF, "vp8_shift");
        if (p->vp8_shift < 0) return -1;
    }
    p->b0 = (int)b0;
    p->b1 = (int)b1;
    p->seq = (unsigned long)seq;
    p->ts = (unsigned long)ts;
    p->ssrc = (unsigned long)ssrc;
    p->padding = (Py_ssize_t)padding;
    p->csrc = args[first + 5];
    if (PyObject_GetBuffer(args[first + 6], &p->head, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(args[first + 7], &p->middle, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(args[first + 8], &p->tail, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(args[first + 9], &p->payload, PyBUF_SIMPLE) < 0) {
        parts_release(p);
        return -1;
    }
    return 0;
}

static void put32(unsigned char *out, unsigned long value) {
    out[0] = (unsigned char)(value >> 24);
    out[1] = (unsigned char)(value >> 16);
    out[2] = (unsigned char)(value >> 8);
    out[3] = (unsigned char)value;
}

/* A VP8 payload descriptor's PictureID and TL0PICIDX moved by the offsets in `shift`, in
 * place: Vp8Rewriter.rewrite's arithmetic (media/vp8.py) when no temporal layer is dropped. */
static void shift_vp8_descriptor(unsigned char *p, Py_ssize_t n, long long shift) {
    unsigned int pic_off = (unsigned int)(shift >> 8), tl0_off = (unsigned int)(shift & 0xFF);
    if (n < 6 || !(p[0] & 0x80) || !(p[1] & 0xE0)) return;
    unsigned char b1 = p[1];
    if ((b1 & 0x80) && (p[2] & 0x80)) { /* 15-bit PictureID */
        unsigned int pic = ((((p[2] & 0x7Fu) << 8) | p[3]) + pic_off) & 0x7FFF;
        p[2] = (unsigned char)(0x80 | (pic >> 8));
        p[3] = (unsigned char)(pic & 0xFF);
        if (b1 & 0x40) p[4] = (unsigned char)(p[4] + tl0_off);
        return;
    }
    int at = 2;
    if (b1 & 0x80) { /* 7-bit PictureID */
        p[2] = (unsigned char)((p[2] + pic_off) & 0x7F);
        at = 3;
    }
    if (b1 & 0x40) p[at] = (unsigned char)(p[at] + tl0_off);
}

/* The packet as a new bytes object: the same bytes media/rtp_build.py's build_rtp returns. */
static PyObject *parts_build(Parts *p) {
    Py_ssize_t ncsrc = PySequence_Size(p->csrc);
    if (ncsrc < 0) return NULL;
    if (ncsrc > 15) {
        PyErr_SetString(PyExc_ValueError, "csrc: at most 15");
        return NULL;
    }
    Py_ssize_t size = 12 + 4 * ncsrc + p->head.len + p->middle.len + p->tail.len +
                      p->payload.len + p->padding;
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(data);
    out[0] = (unsigned char)p->b0;
    out[1] = (unsigned char)p->b1;
    out[2] = (unsigned char)(p->seq >> 8);
    out[3] = (unsigned char)p->seq;
    put32(out + 4, p->ts);
    put32(out + 8, p->ssrc);
    out += 12;
    for (Py_ssize_t i = 0; i < ncsrc; i++) {
        PyObject *item = PySequence_GetItem(p->csrc, i);
        if (item == NULL) goto fail;
        long long value = bounded(item, 0xFFFFFFFFULL, "csrc");
        Py_DECREF(item);
        if (value < 0) goto fail;
        put32(out, (unsigned long)value);
        out += 4;
    }
    memcpy(out, p->head.buf, p->head.len);
    out += p->head.len;
    memcpy(out, p->middle.buf, p->middle.len);
    out += p->middle.len;
    memcpy(out, p->tail.buf, p->tail.len);
    out += p->tail.len;
    memcpy(out, p->payload.buf, p->payload.len);
    if (p->vp8_shift >= 0) shift_vp8_descriptor(out, p->payload.len, p->vp8_shift);
    out += p->payload.len;
    if (p->padding) {
        memset(out, 0, p->padding - 1);
        out[p->padding - 1] = (unsigned char)p->padding;
    }
    return data;
fail:
    Py_DECREF(data);
    return NULL;
}

static PyObject *build_rtp(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "build_rtp takes 12 arguments");
        return NULL;
    }
    Parts parts;
    if (parts_parse(&parts, args, 0) < 0) return NULL;
    PyObject *data = parts_build(&parts);
    parts_release(&parts);
    return data;
}

/* ---- the sender --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    protect_fn protect;
    void *session;
    PyObject *session_owner; /* the pylibsrtp.Session whose libsrtp session this is */
    PyObject *dtls;          /* the RTCDtlsTransport: sends only while its _state is ... */
    PyObject *connected;     /* ... this object (DtlsState.CONNECTED) */
    PyObject *overflow;      /* overflow(packet) -> still waiting; None: drop what is refused */
    int queueing;            /* packets wait in asyncio's buffer: send behind them */
    unsigned long long packets, octets, dropped;
    unsigned char buffer[MAX_PLAINTEXT + MAX_TRAILER];
} FastSender;

static PyObject *state_name;

static int FastSender_init(FastSender *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd",    "host", "port",      "session",  "protect",
                             "owner", "dtls", "connected", "overflow", NULL};
    int fd, port;
    const char *host;
    unsigned long long session, protect;
    PyObject *owner, *dtls, *connected, *overflow = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "isiKKOOO|O", kwlist, &fd, &host, &port,
                                     &session, &protect, &owner, &dtls, &connected, &overflow))
        return -1;
    if (port < 1 || port > 65535 || session == 0 || protect == 0) {
        PyErr_SetString(PyExc_ValueError, "bad port, session or protect function");
        return -1;
    }
    memset(&self->addr, 0, sizeof(self->addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&self->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        self->addr_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        self->addr_len = sizeof(*v6);
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
        return -1;
    }
    int copy = dup(fd);
    if (copy < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (self->fd >= 0) close(self->fd);
    self->fd = copy;
    self->session = (void *)(uintptr_t)session;
    self->protect = (protect_fn)(uintptr_t)protect;
    Py_XSETREF(self->session_owner, Py_NewRef(owner));
    Py_XSETREF(self->dtls, Py_NewRef(dtls));
    Py_XSETREF(self->connected, Py_NewRef(connected));
    Py_XSETREF(self->overflow, Py_NewRef(overflow));
    self->queueing = 0;
    return 0;
}

static PyObject *FastSender_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    FastSender *self = (FastSender *)type->tp_alloc(type, 0);
    if (self != NULL) self->fd = -1;
    return (PyObject *)self;
}

/* The transport's listeners hold the sender that holds the transport: the collector must see
 * these references, or every subscriber's transport would be kept alive by that cycle. */
static int FastSender_traverse(FastSender *self, visitproc visit, void *arg) {
    Py_VISIT(self->session_owner);
    Py_VISIT(self->dtls);
    Py_VISIT(self->connected);
    Py_VISIT(self->overflow);
    return 0;
}

static int FastSender_clear(FastSender *self) {
    Py_CLEAR(self->session_owner);
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->connected);
    Py_CLEAR(self->overflow);
    return 0;
}

static void FastSender_dealloc(FastSender *self) {
    PyObject_GC_UnTrack(self);
    if (self->fd >= 0) close(self->fd);
    FastSender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Protect `data` and send it. 1: sent (or queued by `overflow`), 0: dropped (the socket is
 * full, no overflow), -1: exception set. */
static int send_protected(FastSender *self, const unsigned char *data, Py_ssize_t size) {
    if (self->fd < 0 || self->dtls == NULL) {
        PyErr_SetString(PyExc_ConnectionError, "sender closed");
        return -1;
    }
    PyObject *state = PyObject_GetAttr(self->dtls, state_name);
    if (state == NULL) return -1;
    Py_DECREF(state); /* identity only */
    if (state != self->connected) {
        PyErr_SetString(PyExc_ConnectionError, "DTLS transport not connected");
        return -1;
    }
    if (size > MAX_PLAINTEXT) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return -1;
    }
    memcpy(self->buffer, data, size);
    int length = (int)size;
    int status = self->protect(self->session, self->buffer, &length);
    if (status != 0) {
        PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (libsrtp status %d)", status);
        return -1;
    }
    if (!self->queueing) {
        ssize_t sent = sendto(self->fd, self->buffer, (size_t)length, MSG_DONTWAIT,
                              (struct sockaddr *)&self->addr, self->addr_len);
        if (sent >= 0) {
            self->packets++;
            self->octets += (unsigned long long)length;
            return 1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (self->overflow == NULL || self->overflow == Py_None) {
            self->dropped++;
            return 0;
        }
    }
    /* The kernel refused (or refused earlier and asyncio still holds packets: order them
     * behind those): `overflow` queues the packet in asyncio's bounded buffer, or drops it,
     * and says whether packets still wait there. */
    PyObject *packet = PyBytes_FromStringAndSize((const char *)self->buffer, length);
    if (packet == NULL) return -1;
    PyObject *waiting = PyObject_CallOneArg(self->overflow, packet);
    Py_DECREF(packet);
    if (waiting == NULL) return -1;
    self->queueing = PyObject_IsTrue(waiting) == 1;
    Py_DECREF(waiting);
    return 1;
}

static PyObject *FastSender_send(FastSender *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int result = send_protected(self, view.buf, view.len);
    PyBuffer_Release(&view);
    if (result < 0) return NULL;
    return PyBool_FromLong(result);
}

/* emit(history, key, b0, b1, seq, ts, ssrc, csrc, head, middle, tail, payload, padding,
 *      vp8_shift):
 * build the packet, store it as history[key], protect and send it. True: sent; False:
 * dropped at a full socket (still in the history, as the Python path keeps it). */
static PyObject *FastSender_emit(FastSender *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "emit takes 14 arguments");
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "history must be a dict");
        return NULL;
    }
    Parts parts;
    if (parts_parse(&parts, args, 2) < 0) return NULL;
    PyObject *data = parts_build(&parts);
    parts_release(&parts);
    if (data == NULL) return NULL;
    if (PyDict_SetItem(args[0], args[1], data) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    int result = send_protected(self, (unsigned char *)PyBytes_AS_STRING(data),
                                PyBytes_GET_SIZE(data));
    Py_DECREF(data);
    if (result < 0) return NULL;
    return PyBool_FromLong(result);
}

static PyObject *FastSender_close(FastSender *self, PyObject *unused) {
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
    Py_RETURN_NONE;
}

static PyMethodDef FastSender_methods[] = {
    {"send", (PyCFunction)FastSender_send, METH_O, "Protect and send one RTP packet."},
    {"emit", (PyCFunction)(void (*)(void))FastSender_emit, METH_FASTCALL,
     "Build, keep in the history, protect and send one rewritten RTP packet."},
    {"close", (PyCFunction)FastSender_close, METH_NOARGS, "Close the duplicated socket."},
    {NULL}};

static PyMemberDef FastSender_members[] = {
    {"packets", T_ULONGLONG, offsetof(FastSender, packets), READONLY, "packets sent"},
    {"octets", T_ULONGLONG, offsetof(FastSender, octets), READONLY, "SRTP bytes sent"},
    {"dropped", T_ULONGLONG, offsetof(FastSender, dropped), READONLY,
     "packets dropped at a full socket"},
    {"fd", T_INT, offsetof(FastSender, fd), READONLY, "the duplicated socket (-1: closed)"},
    {"queueing", T_INT, offsetof(FastSender, queueing), READONLY,
     "packets go through overflow (asyncio's buffer holds some)"},
    {NULL}};

static PyTypeObject FastSenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relayroom.media._fastpath.FastSender",
    .tp_basicsize = sizeof(FastSender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SRTP-protects and sends RTP packets on a duplicate of one UDP socket.",
    .tp_new = FastSender_new,
    .tp_init = (initproc)FastSender_init,
    .tp_dealloc = (destructor)FastSender_dealloc,
    .tp_traverse = (traverseproc)FastSender_traverse,
    .tp_clear = (inquiry)FastSender_clear,
    .tp_methods = FastSender_methods,
    .tp_members = FastSender_members,
};


/* ---- the receive step: SRTP unprotect, RTP parse ------------------------------------------ */

typedef struct {
    PyObject_HEAD
    protect_fn unprotect; /* srtp_unprotect has srtp_protect's signature */
    void *session;
    PyObject *session_owner;
    PyObject *error; /* pylibsrtp.Error: what a packet libsrtp refuses raises */
    unsigned char buffer[MAX_PLAINTEXT + MAX_TRAILER];
} Unprotector;

static int Unprotector_init(Unprotector *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"session", "unprotect", "owner", "error", NULL};
    unsigned long long session, unprotect;
    PyObject *owner, *error;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKOO", kwlist, &session, &unprotect, &owner,
                                     &error))
        return -1;
    if (session == 0 || unprotect == 0) {
        PyErr_SetString(PyExc_ValueError, "bad session or unprotect function");
        return -1;
    }
    self->session = (void *)(uintptr_t)session;
    self->unprotect = (protect_fn)(uintptr_t)unprotect;
    Py_XSETREF(self->session_owner, Py_NewRef(owner));
    Py_XSETREF(self->error, Py_NewRef(error));
    return 0;
}

static int Unprotector_traverse(Unprotector *self, visitproc visit, void *arg) {
    Py_VISIT(self->session_owner);
    Py_VISIT(self->error);
    return 0;
}

static int Unprotector_clear(Unprotector *self) {
    Py_CLEAR(self->session_owner);
    Py_CLEAR(self->error);
    return 0;
}

static void Unprotector_dealloc(Unprotector *self) {
    PyObject_GC_UnTrack(self);
    Unprotector_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The RTP packet in the clear; ValueError when too long, `error` when libsrtp refuses it. */
static PyObject *Unprotector_call(Unprotector *self, PyObject *args, PyObject *kwds) {
    Py_buffer view;
    if (self->session_owner == NULL) {
        PyErr_SetString(PyExc_ValueError, "unprotector cleared");
        return NULL;
    }
    if (kwds != NULL || PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "takes one packet");
        return NULL;
    }
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, 0), &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len > MAX_PLAINTEXT + MAX_TRAILER) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return NULL;
    }
    memcpy(self->buffer, view.buf, view.len);
    int length = (int)view.len;
    PyBuffer_Release(&view);
    int status = self->unprotect(self->session, self->buffer, &length);
    if (status != 0) {
        PyObject *code = PyLong_FromLong(status);
        if (code != NULL) {
            PyErr_SetObject(self->error, code);
            Py_DECREF(code);
        }
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)self->buffer, length);
}

static PyTypeObject UnprotectorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relayroom.media._fastpath.Unprotector",
    .tp_basicsize = sizeof(Unprotector),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Unprotects SRTP packets with one libsrtp session (call it with the packet).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Unprotector_init,
    .tp_dealloc = (destructor)Unprotector_dealloc,
    .tp_traverse = (traverseproc)Unprotector_traverse,
    .tp_clear = (inquiry)Unprotector_clear,
    .tp_call = (ternaryfunc)Unprotector_call,
};

/* Header extension kinds, in RtpReader's order (media/aiortc_hooks.py). */
enum { EXT_MID, EXT_RRID, EXT_RID, EXT_ABS, EXT_TOFFSET, EXT_LEVEL, EXT_TCC, EXT_NONE = 255 };

static PyObject *s_version, *s_marker, *s_payload_type, *s_sequence_number, *s_timestamp,
    *s_ssrc, *s_csrc, *s_padding_size, *s_extensions, *s_payload, *s_mid,
    *s_repaired_rtp_stream_id, *s_rtp_stream_id, *s_abs_send_time, *s_transmission_offset,
    *s_audio_level, *s_transport_sequence_number, *empty_tuple;

static int set_owned(PyObject *obj, PyObject *name, PyObject *value) {
    if (value == NULL) return -1;
    int result = PyObject_SetAttr(obj, name, value);
    Py_DECREF(value);
    return result;
}

static PyObject *new_instance(PyObject *type) {
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "expected a class");
        return NULL;
    }
    return PyBaseObject_Type.tp_new((PyTypeObject *)type, empty_tuple, NULL);
}

/* One-byte header extension elements (RFC 8285) into a new `ext_type` instance. */
static PyObject *one_byte_extensions(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end,
                                     const unsigned char *kinds, PyObject *ext_type) {
    PyObject *values = new_instance(ext_type);
    if (values == NULL) return NULL;
    while (pos < end) {
        unsigned char first = data[pos++];
        if (first == 0) continue; /* padding */
        Py_ssize_t length = (first & 0x0F) + 1;
        if (pos + length > end) {
            PyErr_SetString(PyExc_ValueError, "RTP one-byte header extension value is truncated");
            goto fail;
        }
        const unsigned char *v = data + pos;
        int ok = 0;
        switch (kinds[first >> 4]) {
            case EXT_MID:
                ok = set_owned(values, s_mid,
                               PyUnicode_DecodeUTF8((const char *)v, length, NULL));
                break;
            case EXT_RRID:
                ok = set_owned(values, s_repaired_rtp_stream_id,
                               PyUnicode_DecodeASCII((const char *)v, length, NULL));
                break;
            case EXT_RID:
                ok = set_owned(values, s_rtp_stream_id,
                               PyUnicode_DecodeASCII((const char *)v, length, NULL));
                break;
            case EXT_ABS:
                if (length != 3) goto wrong_size;
                ok = set_owned(values, s_abs_send_time,
                               PyLong_FromLong(((long)v[0] << 16) | (v[1] << 8) | v[2]));
                break;
            case EXT_TOFFSET: {
                if (length != 3) goto wrong_size;
                long value = ((long)v[0] << 16) | (v[1] << 8) | v[2];
                if (value & 0x800000) value -= 0x1000000; /* signed 24 bits */
                ok = set_owned(values, s_transmission_offset, PyLong_FromLong(value));
                break;
            }
            case EXT_LEVEL:
                if (length != 1) goto wrong_size;
                ok = set_owned(values, s_audio_level,
                               Py_BuildValue("(Ni)", PyBool_FromLong(v[0] & 0x80), v[0] & 0x7F));
                break;
            case EXT_TCC:
                if (length != 2) goto wrong_size;
                ok = set_owned(values, s_transport_sequence_number,
                               PyLong_FromLong((v[0] << 8) | v[1]));
                break;
            default:
                break;
        }
        if (ok < 0) goto fail;
        pos += length;
    }
    return values;
wrong_size:
    PyErr_SetString(PyExc_ValueError, "RTP header extension of the wrong size");
fail:
    Py_DECREF(values);
    return NULL;
}

/* parse_rtp(data, kinds, packet_type, extensions_type, other_profile) -> packet: what
 * RtpReader.parse returns (media/aiortc_hooks.py), the same fields and the same ValueError for
 * what is not RTP. `kinds`: 16 bytes, the kind of each one-byte extension id (255: none);
 * `other_profile(profile, bytes)` parses an extension block of another profile. */
static PyObject *parse_rtp(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_rtp takes 5 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) != 16) {
        PyErr_SetString(PyExc_TypeError, "parse_rtp(bytes, 16 bytes of kinds, ...)");
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    const unsigned char *kinds = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    if (size < 12) {
        PyErr_SetString(PyExc_ValueError, "RTP packet length is less than 12 bytes");
        return NULL;
    }
    if (d[0] >> 6 != 2) {
        PyErr_SetString(PyExc_ValueError, "RTP packet has invalid version");
        return NULL;
    }
    int cc = d[0] & 0x0F;
    Py_ssize_t pos = 12 + 4 * cc;
    if (size < pos) {
        PyErr_SetString(PyExc_ValueError, "RTP packet has truncated CSRC");
        return NULL;
    }
    PyObject *extensions = NULL;
    Py_ssize_t padding = 0;
    if (d[0] & 0x10) {
        if (size < pos + 4) {
            PyErr_SetString(PyExc_ValueError,
                            "RTP packet has truncated extension profile / length");
            return NULL;
        }
        int profile = (d[pos] << 8) | d[pos + 1];
        Py_ssize_t end = pos + 4 + (Py_ssize_t)((d[pos + 2] << 8) | d[pos + 3]) * 4;
        pos += 4;
        if (size < end) {
            PyErr_SetString(PyExc_ValueError, "RTP packet has truncated extension value");
            return NULL;
        }
        if (profile == 0xBEDE) {
            extensions = one_byte_extensions(d, pos, end, kinds, args[3]);
        } else {
            PyObject *block = PyBytes_FromStringAndSize((const char *)d + pos, end - pos);
            if (block == NULL) return NULL;
            extensions = PyObject_CallFunction(args[4], "iN", profile, block);
        }
        if (extensions == NULL) return NULL;
        pos = end;
    } else {
        extensions = new_instance(args[3]);
        if (extensions == NULL) return NULL;
    }
    Py_ssize_t payload_end = size;
    if (d[0] & 0x20) {
        padding = d[size - 1];
        if (padding == 0 || padding > size - pos) {
            Py_DECREF(extensions);
            PyErr_SetString(PyExc_ValueError, "RTP packet padding length is invalid");
            return NULL;
        }
        payload_end = size - padding;
    }
    PyObject *csrc = PyList_New(cc);
    if (csrc == NULL) {
        Py_DECREF(extensions);
        return NULL;
    }
    for (int i = 0; i < cc; i++) {
        const unsigned char *c = d + 12 + 4 * i;
        PyObject *value = PyLong_FromUnsignedLong(((unsigned long)c[0] << 24) | (c[1] << 16) |
                                                  (c[2] << 8) | c[3]);
        if (value == NULL) {
            Py_DECREF(csrc);
            Py_DECREF(extensions);
            return NULL;
        }
        PyList_SET_ITEM(csrc, i, value);
    }
    PyObject *packet = new_instance(args[2]);
    if (packet == NULL ||
        set_owned(packet, s_version, PyLong_FromLong(2)) < 0 ||
        set_owned(packet, s_marker, PyLong_FromLong(d[1] >> 7)) < 0 ||
        set_owned(packet, s_payload_type, PyLong_FromLong(d[1] & 0x7F)) < 0 ||
        set_owned(packet, s_sequence_number, PyLong_FromLong((d[2] << 8) | d[3])) < 0 ||
        set_owned(packet, s_timestamp,
                  PyLong_FromUnsignedLong(((unsigned long)d[4] << 24) | (d[5] << 16) |
                                          (d[6] << 8) | d[7])) < 0 ||
        set_owned(packet, s_ssrc,
                  PyLong_FromUnsignedLong(((unsigned long)d[8] << 24) | (d[9] << 16) |
                                          (d[10] << 8) | d[11])) < 0 ||
        set_owned(packet, s_csrc, Py_NewRef(csrc)) < 0 ||
        set_owned(packet, s_padding_size, PyLong_FromSsize_t(padding)) < 0 ||
        set_owned(packet, s_extensions, Py_NewRef(extensions)) < 0 ||
        set_owned(packet, s_payload,
                  PyBytes_FromStringAndSize((const char *)d + pos, payload_end - pos)) < 0) {
        Py_XDECREF(packet);
        packet = NULL;
    }
    Py_DECREF(csrc);
    Py_DECREF(extensions);
    return packet;
}

static PyMethodDef module_methods[] = {
    {"build_rtp", (PyCFunction)(void (*)(void))build_rtp, METH_FASTCALL,
     "build_rtp(b0, b1, seq, ts, ssrc, csrc, head, middle, tail, payload, padding, vp8_shift)"
     " -> bytes"},
    {"parse_rtp", (PyCFunction)(void (*)(void))parse_rtp, METH_FASTCALL,
     "parse_rtp(data, kinds, packet_type, extensions_type, other_profile) -> packet"},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastpath", "relayroom's compiled forwarding step.", -1,
    module_methods};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&FastSenderType) < 0 || PyType_Ready(&UnprotectorType) < 0) return NULL;
    state_name = PyUnicode_InternFromString("_state");
    if (state_name == NULL) return NULL;
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {{&s_version, "version"},
                 {&s_marker, "marker"},
                 {&s_payload_type, "payload_type"},
                 {&s_sequence_number, "sequence_number"},
                 {&s_timestamp, "timestamp"},
                 {&s_ssrc, "ssrc"},
                 {&s_csrc, "csrc"},
                 {&s_padding_size, "padding_size"},
                 {&s_extensions, "extensions"},
                 {&s_payload, "payload"},
                 {&s_mid, "mid"},
                 {&s_repaired_rtp_stream_id, "repaired_rtp_stream_id"},
                 {&s_rtp_stream_id, "rtp_stream_id"},
                 {&s_abs_send_time, "abs_send_time"},
                 {&s_transmission_offset, "transmission_offset"},
                 {&s_audio_level, "audio_level"},
                 {&s_transport_sequence_number, "transport_sequence_number"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) return NULL;
    }
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "FastSender", (PyObject *)&FastSenderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Unprotector", (PyObject *)&UnprotectorType) < 0 ||
        PyModule_AddIntConstant(module, "MAX_PLAINTEXT", MAX_PLAINTEXT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
