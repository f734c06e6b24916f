/*
 * ingest._spanmap: decode an OTLP ExportTraceServiceRequest (protobuf) and
 * map its spans in one compiled pass, for exports in the usual shape.
 *
 * It does what ingest.codec.decode_protobuf followed by IngestService.map do
 * (ingest/fastmap.py says which parts), and gives up, returning None, on
 * anything it does not decide exactly as they would: a malformed body, a
 * call that would be rejected, a context, operation or token attribute of a
 * type other than the usual, a nesting deeper than it follows. The Python
 * path then decodes the body again and answers as always. So the compiled
 * path only has to be right where it answers, and tests/unit/test_spanmap.py
 * holds it to the Python path on both the usual and the unusual.
 *
 * Pass one reads the body without the interpreter lock: every span's fields,
 * and of its attributes only the keys the mapping reads (a small hash table
 * of them), while checking the rest as upb would (wire format, UTF-8 of the
 * strings that the Python path's views declare), and then writes the
 * `operations` row of each call in the plain subset (below, "operations
 * rows"). Pass two, with the lock, builds only the Python objects the
 * pipeline keeps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define MAX_KEYS 160     /* attribute keys the mapping reads */
#define TABLE_SIZE 512   /* open-addressing hash table of those keys */
#define MAX_DEPTH 24     /* AnyValue nesting followed; deeper gives up */
#define MAX_GROUPS 8     /* token alias groups */
#define MAX_ALIASES 16   /* aliases per group */
#define MAX_OPERATION_KEYS 8
#define MAX_MODEL_CALLS 64
#define MAX_NAMES 64     /* provider spellings, streaming operations */

/* The alias lists of an operations row's fields, in the order
 * ingest/fastmap.py passes them (ROW_FIELDS). */
enum {
    F_PROVIDER, F_REQUEST_BEFORE, F_REQUEST_AFTER, F_RESPONSE, F_INPUT, F_OUTPUT, F_TOTAL, F_CACHE_READ,
    F_CACHE_WRITE, F_REASONING, F_STREAMING, F_CONVERSATION, F_SERVER, FIELD_COUNT
};

enum { KIND_NONE = 0, KIND_STRING, KIND_BOOL, KIND_INT, KIND_DOUBLE, KIND_ARRAY, KIND_KVLIST, KIND_BYTES };

typedef struct {
    const uint8_t *data; /* string or bytes; an array's ArrayValue */
    Py_ssize_t size;
    int64_t integer;
    double number;
    int kind;
    int members; /* oneof members on the wire (one in a usual value) */
} Value;

/* Every attribute of a span, in order, kept for writing its row. */
typedef struct {
    const uint8_t *key;
    Py_ssize_t key_size;
    int index; /* into the mapper's keys, -1 for any other */
    int keys_seen, values_seen; /* on the wire: one each in a usual entry */
    Value value;
} Attribute;

typedef struct {
    int key;  /* index into the mapper's keys */
    Value value;
} Found;

typedef struct {
    const uint8_t *bytes, *trace, *span, *parent, *name;
    Py_ssize_t size, trace_size, span_size, parent_size, name_size;
    uint64_t start, end;
    int32_t status;
    Py_ssize_t scope_block;
    Py_ssize_t found_start, found_count;
    Py_ssize_t attribute_start, attribute_count;
    const uint8_t *status_message;
    Py_ssize_t status_message_size;
    int repeated_fields; /* a span field other than attributes and events sent twice, or a status field */
    Py_ssize_t row_start, row_size; /* its operations row, or row_size -1 */
} SpanDesc;

typedef struct {
    const uint8_t *bytes;
    Py_ssize_t size;
    Py_ssize_t resource_block;
    int fields; /* field 1 occurrences */
} Block;

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Buffer;

typedef struct {
    SpanDesc *spans;
    Py_ssize_t span_count, span_capacity;
    Found *found;
    Py_ssize_t found_count, found_capacity;
    Attribute *attributes;
    Py_ssize_t attribute_count, attribute_capacity;
    Buffer rows; /* the operations rows of the spans that have one */
    Block *resources, *scopes;
    Py_ssize_t resource_count, resource_capacity, scope_count, scope_capacity;
} Scan;

typedef struct {
    PyObject_HEAD
    /* the keys, as Python strings and UTF-8 */
    PyObject *key_objects[MAX_KEYS];
    const char *key_text[MAX_KEYS];
    Py_ssize_t key_size[MAX_KEYS];
    int key_count;
    int16_t table[TABLE_SIZE]; /* hash slot -> key index, -1 empty */
    /* context keys, in the order the Python path reads them */
    int context[MAX_KEYS];
    int context_count;
    int operation[MAX_OPERATION_KEYS];
    int operation_count;
    /* (operation key, value, capability) */
    int call_key[MAX_MODEL_CALLS];
    PyObject *call_value[MAX_MODEL_CALLS], *call_capability[MAX_MODEL_CALLS];
    int call_count;
    int tokens[MAX_GROUPS][MAX_ALIASES];
    int token_sizes[MAX_GROUPS];
    int token_groups;
    int error_key;
    uint64_t min_start, max_start;
    int32_t status_error;
    PyObject *span_record, *span_fact, *model_call, *candidate;
    PyObject *make_resource, *make_scope;
    PyObject *no_events, *no_exception;
    /* Writing operations rows (clickhouse/mapping.py's view, for the usual spans). */
    int row_plan;
    int fields[FIELD_COUNT][MAX_ALIASES];
    int field_sizes[FIELD_COUNT];
    uint8_t mapped[MAX_KEYS]; /* has a column of its own: not in the attributes map */
    int invocation_key;
    PyObject *names[3 * MAX_NAMES + 1]; /* the strings below, kept alive */
    int name_count;
    const char *service_key;
    Py_ssize_t service_key_size;
    const char *provider_from[MAX_NAMES], *provider_to[MAX_NAMES];
    Py_ssize_t provider_from_size[MAX_NAMES], provider_to_size[MAX_NAMES];
    int provider_count;
    const char *streaming_operation[MAX_NAMES];
    Py_ssize_t streaming_operation_size[MAX_NAMES];
    int streaming_operation_count;
    Py_ssize_t max_value_chars, max_attributes;
} Mapper;

/* --- growing byte buffers (no Python calls: pass one uses them too) ---------- */

static int reserve(Buffer *b, Py_ssize_t more)
{
    if (b->size + more <= b->capacity)
        return 1;
    Py_ssize_t grown = b->capacity ? b->capacity : 4096;
    while (grown < b->size + more)
        grown *= 2;
    char *data = (char *)realloc(b->data, (size_t)grown);
    if (!data)
        return 0; /* no Python error: pass one runs without the lock */
    b->data = data;
    b->capacity = grown;
    return 1;
}

static int put(Buffer *b, const void *data, Py_ssize_t size)
{
    if (size == 0)
        return 1;
    if (!reserve(b, size))
        return 0;
    memcpy(b->data + b->size, data, (size_t)size);
    b->size += size;
    return 1;
}

static int varint_size(uint64_t value)
{
    int size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

static int put_varint(Buffer *b, uint64_t value)
{
    uint8_t out[10];
    int size = 0;
    while (value >= 0x80) {
        out[size++] = (uint8_t)(value & 0x7F) | 0x80;
        value >>= 7;
    }
    out[size++] = (uint8_t)value;
    return put(b, out, size);
}

/* --- wire format ------------------------------------------------------------ */

static int read_varint(const uint8_t **at, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *at;
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1)
            return 0; /* past 64 bits: leave it to upb */
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *at = p;
            *out = value;
            return 1;
        }
    }
    return 0;
}

/* One field's key. Field number 0 and groups are left to upb. */
static int read_key(const uint8_t **at, const uint8_t *end, uint32_t *number, int *wire)
{
    uint64_t key;
    if (!read_varint(at, end, &key) || key > 0xFFFFFFFFu)
        return 0;
    *number = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    return *number != 0 && *number <= 0x1FFFFFFF;
}

static int read_length(const uint8_t **at, const uint8_t *end, const uint8_t **data, Py_ssize_t *size)
{
    uint64_t length;
    if (!read_varint(at, end, &length) || length > (uint64_t)(end - *at) || length > 0x7FFFFFFF)
        return 0;
    *data = *at;
    *size = (Py_ssize_t)length;
    *at += length;
    return 1;
}

static int read_fixed64(const uint8_t **at, const uint8_t *end, uint64_t *out)
{
    if (end - *at < 8)
        return 0;
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = value << 8 | (*at)[i];
    *at += 8;
    *out = value;
    return 1;
}

static int skip_field(const uint8_t **at, const uint8_t *end, int wire)
{
    uint64_t ignored;
    const uint8_t *data;
    Py_ssize_t size;
    switch (wire) {
    case 0:
        return read_varint(at, end, &ignored);
    case 1:
        if (end - *at < 8)
            return 0;
        *at += 8;
        return 1;
    case 2:
        return read_length(at, end, &data, &size);
    case 5:
        if (end - *at < 4)
            return 0;
        *at += 4;
        return 1;
    default:
        return 0; /* groups and invalid wire types */
    }
}

/* The next field of a message: its number and wire type, and the bytes of a
 * length-delimited one (any other is skipped). 0 when malformed. */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *number, int *wire, const uint8_t **data,
                      Py_ssize_t *size)
{
    if (!read_key(p, end, number, wire))
        return 0;
    return *wire == 2 ? read_length(p, end, data, size) : skip_field(p, end, *wire);
}

/* The next field of a message whose fields 1 and 2 are length-delimited (a
 * KeyValue, a ResourceSpans, a ScopeSpans, a Scope): *number 1 or 2 with its
 * bytes, or 0 for any other field, skipped. 0 when malformed (field 1 or 2
 * sent with another wire type included, as upb refuses it). */
static int next_pair_field(const uint8_t **p, const uint8_t *end, uint32_t *number, const uint8_t **data,
                           Py_ssize_t *size)
{
    int wire;
    if (!next_field(p, end, number, &wire, data, size))
        return 0;
    if (*number == 1 || *number == 2)
        return wire == 2;
    *number = 0;
    return 1;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as upb checks proto3 strings. */
static int valid_utf8(const uint8_t *p, Py_ssize_t size)
{
    const uint8_t *end = p + size;
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        Py_ssize_t left = end - p;
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || (p[1] & 0xC0) != 0x80)
                return 0;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
                return 0;
            if (c == 0xE0 && p[1] < 0xA0)
                return 0;
            if (c == 0xED && p[1] > 0x9F)
                return 0;
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && p[1] < 0x90)
                return 0;
            if (c == 0xF4 && p[1] > 0x8F)
                return 0;
            p += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* --- AnyValue ------------------------------------------------------------------ */

static int scan_key_value(const uint8_t *p, const uint8_t *end, int depth);

/* An AnyValue; `value` (may be NULL) gets its oneof member, the last one set. */
static int scan_any_value(const uint8_t *p, const uint8_t *end, Value *value, int depth)
{
    if (depth > MAX_DEPTH)
        return 0;
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data;
        Py_ssize_t size;
        uint64_t bits;
        if (!read_key(&p, end, &number, &wire))
            return 0;
        switch (number) {
        case 1: /* string_value */
        case 7: /* bytes_value */
            if (wire != 2 || !read_length(&p, end, &data, &size))
                return 0;
            if (number == 1 && !valid_utf8(data, size))
                return 0;
            if (value) {
                value->kind = number == 1 ? KIND_STRING : KIND_BYTES;
                value->data = data;
                value->size = size;
                value->members++;
            }
            break;
        case 2: /* bool_value */
        case 3: /* int_value */
            if (wire != 0 || !read_varint(&p, end, &bits))
                return 0;
            if (value) {
                value->kind = number == 2 ? KIND_BOOL : KIND_INT;
                value->integer = (int64_t)bits;
                value->members++;
            }
            break;
        case 4: /* double_value */
            if (wire != 1 || !read_fixed64(&p, end, &bits))
                return 0;
            if (value) {
                value->kind = KIND_DOUBLE;
                memcpy(&value->number, &bits, sizeof bits);
                value->members++;
            }
            break;
        case 5: /* array_value: repeated AnyValue values = 1 */
        case 6: /* kvlist_value: repeated KeyValue values = 1 */
        {
            if (wire != 2 || !read_length(&p, end, &data, &size))
                return 0;
            const uint8_t *q = data, *list_end = data + size;
            while (q < list_end) {
                uint32_t inner;
                int inner_wire;
                const uint8_t *item;
                Py_ssize_t item_size;
                if (!read_key(&q, list_end, &inner, &inner_wire))
                    return 0;
                if (inner != 1) {
                    if (!skip_field(&q, list_end, inner_wire))
                        return 0;
                    continue;
                }
                if (inner_wire != 2 || !read_length(&q, list_end, &item, &item_size))
                    return 0;
                if (number == 5 ? !scan_any_value(item, item + item_size, NULL, depth + 2)
                                : !scan_key_value(item, item + item_size, depth + 2))
                    return 0;
            }
            if (value) {
                value->kind = number == 5 ? KIND_ARRAY : KIND_KVLIST;
                value->data = data;
                value->size = size;
                value->members++;
            }
            break;
        }
        default:
            if (!skip_field(&p, end, wire))
                return 0;
        }
    }
    return 1;
}

static int scan_key_value(const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH)
        return 0;
    while (p < end) {
        uint32_t number;
        const uint8_t *data = NULL;
        Py_ssize_t size = 0;
        if (!next_pair_field(&p, end, &number, &data, &size))
            return 0;
        if (number == 1 ? !valid_utf8(data, size) : number == 2 && !scan_any_value(data, data + size, NULL, depth + 1))
            return 0;
    }
    return 1;
}

/* --- the keys the mapping reads ------------------------------------------------ */

/* Every span attribute's key is hashed, so only its length and its first and
 * last eight bytes are (keys differ there; a collision costs a probe). */
static uint32_t hash_key(const uint8_t *p, Py_ssize_t size)
{
    if (size < 8) {
        uint32_t h = 2166136261u;
        for (Py_ssize_t i = 0; i < size; i++)
            h = (h ^ p[i]) * 16777619u;
        return h;
    }
    uint64_t head, tail;
    memcpy(&head, p, 8);
    memcpy(&tail, p + size - 8, 8);
    uint64_t h = (head * 0x9E3779B97F4A7C15ull) ^ (tail * 0xC2B2AE3D27D4EB4Full) ^ (uint64_t)size;
    return (uint32_t)(h ^ (h >> 29));
}

static int find_key(const Mapper *m, const uint8_t *p, Py_ssize_t size)
{
    uint32_t slot = hash_key(p, size) & (TABLE_SIZE - 1);
    for (;;) {
        int index = m->table[slot];
        if (index < 0)
            return -1;
        if (m->key_size[index] == size && memcmp(m->key_text[index], p, (size_t)size) == 0)
            return index;
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
}

/* --- pass one: scan without the interpreter lock ------------------------------- */

#define GROW(array, count, capacity, type)                                              \
    do {                                                                                \
        if ((count) == (capacity)) {                                                    \
            Py_ssize_t grown = (capacity) ? (capacity) * 2 : 64;                        \
            type *more = (type *)realloc((array), (size_t)grown * sizeof(type));        \
            if (!more)                                                                  \
                return 0;                                                               \
            (array) = more;                                                             \
            (capacity) = grown;                                                         \
        }                                                                               \
    } while (0)

/* One map entry of the span's attributes (KeyValue: key = 1, value = 2).
 * `slots` maps a key index to its entry in `local` (-1: not seen yet);
 * with a row plan, every entry is also kept in scan->attributes. */
static int scan_attribute(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end, int16_t *slots,
                          Found *local, int *local_count)
{
    const uint8_t *key = (const uint8_t *)"";
    Py_ssize_t key_size = 0;
    Value value = {NULL, 0, 0, 0.0, KIND_NONE, 0};
    int values_seen = 0, keys_seen = 0;
    while (p < end) {
        uint32_t number;
        const uint8_t *data = NULL;
        Py_ssize_t size = 0;
        if (!next_pair_field(&p, end, &number, &data, &size))
            return 0;
        if (number == 1) {
            if (!valid_utf8(data, size))
                return 0;
            key = data;
            key_size = size;
            keys_seen++;
        } else if (number == 2) {
            /* Read as it is checked: which key it belongs to may come after it. */
            value = (Value){NULL, 0, 0, 0.0, KIND_NONE, 0};
            if (!scan_any_value(data, data + size, &value, 3))
                return 0;
            values_seen++;
        }
    }
    int index = find_key(m, key, key_size);
    if (m->row_plan) {
        GROW(scan->attributes, scan->attribute_count, scan->attribute_capacity, Attribute);
        scan->attributes[scan->attribute_count++] = (Attribute){key, key_size, index, keys_seen, values_seen, value};
    }
    if (index < 0)
        return 1;
    if (values_seen > 1)
        return 0; /* two values in one entry merge: rare, left to upb */
    /* A repeated key: the last entry wins, as in the Python path's map. */
    if (slots[index] < 0)
        slots[index] = (int16_t)(*local_count)++;
    local[slots[index]] = (Found){index, value};
    return 1;
}

static int scan_status(const uint8_t *p, const uint8_t *end, SpanDesc *span)
{
    int seen[2] = {0, 0};
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data;
        Py_ssize_t size;
        uint64_t bits;
        if (!read_key(&p, end, &number, &wire))
            return 0;
        if (number == 2) { /* message */
            if (wire != 2 || !read_length(&p, end, &data, &size) || !valid_utf8(data, size))
                return 0;
            span->status_message = data;
            span->status_message_size = size;
            if (seen[0]++)
                span->repeated_fields = 1;
        } else if (number == 3) { /* code */
            if (wire != 0 || !read_varint(&p, end, &bits))
                return 0;
            span->status = (int32_t)(uint32_t)bits;
            if (seen[1]++)
                span->repeated_fields = 1;
        } else if (!skip_field(&p, end, wire)) {
            return 0;
        }
    }
    return 1;
}

static int scan_span(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end, Py_ssize_t scope_block)
{
    GROW(scan->spans, scan->span_count, scan->span_capacity, SpanDesc);
    SpanDesc *span = &scan->spans[scan->span_count];
    memset(span, 0, sizeof *span);
    span->bytes = p;
    span->size = end - p;
    span->scope_block = scope_block;
    span->trace = span->span = span->parent = span->name = span->status_message = (const uint8_t *)"";
    span->attribute_start = scan->attribute_count;
    span->row_size = -1;
    Found local[MAX_KEYS];
    int local_count = 0;
    int16_t slots[MAX_KEYS];
    memset(slots, 0xFF, sizeof(int16_t) * (size_t)m->key_count);
    int seen_name = 0, seen_status = 0;
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data;
        Py_ssize_t size;
        uint64_t bits;
        if (!read_key(&p, end, &number, &wire))
            return 0;
        switch (number) {
        case 1:
        case 2:
        case 4:
        case 5:
        case 9:
        case 11:
        case 15:
            if (wire != 2 || !read_length(&p, end, &data, &size))
                return 0;
            if (number == 1) {
                span->trace = data;
                span->trace_size = size;
            } else if (number == 2) {
                span->span = data;
                span->span_size = size;
            } else if (number == 4) {
                span->parent = data;
                span->parent_size = size;
            } else if (number == 5) {
                if (!valid_utf8(data, size))
                    return 0;
                span->name = data;
                span->name_size = size;
                if (seen_name++)
                    span->repeated_fields = 1;
            } else if (number == 9) {
                if (!scan_attribute(m, scan, data, data + size, slots, local, &local_count))
                    return 0;
            } else if (number == 15) {
                if (!scan_status(data, data + size, span))
                    return 0;
                if (seen_status++)
                    span->repeated_fields = 1;
            } /* 11: events stay bytes until a failed call needs them */
            break;
        case 7:
        case 8:
            if (wire != 1 || !read_fixed64(&p, end, &bits))
                return 0;
            if (number == 7)
                span->start = bits;
            else
                span->end = bits;
            break;
        default:
            if (!skip_field(&p, end, wire))
                return 0;
        }
    }
    span->found_start = scan->found_count;
    for (int i = 0; i < local_count; i++) {
        GROW(scan->found, scan->found_count, scan->found_capacity, Found);
        scan->found[scan->found_count++] = local[i];
    }
    span->found_count = scan->found_count - span->found_start;
    span->attribute_count = scan->attribute_count - span->attribute_start;
    scan->span_count++;
    return 1;
}

typedef int (*ScanChild)(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end, Py_ssize_t parent);

/* ResourceSpans and ScopeSpans alike: field 1 is the resource or scope
 * (bytes; the last one wins), field 2 each child, scanned by `child` with
 * this block's index. */
static int scan_block(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end, Block **blocks,
                      Py_ssize_t *count, Py_ssize_t *capacity, Py_ssize_t parent, ScanChild child)
{
    GROW(*blocks, *count, *capacity, Block);
    Py_ssize_t block = (*count)++;
    (*blocks)[block] = (Block){(const uint8_t *)"", 0, parent, 0};
    while (p < end) {
        uint32_t number;
        const uint8_t *data = NULL;
        Py_ssize_t size = 0;
        if (!next_pair_field(&p, end, &number, &data, &size))
            return 0;
        if (number == 1) {
            (*blocks)[block].bytes = data;
            (*blocks)[block].size = size;
            (*blocks)[block].fields++;
        } else if (number == 2 && !child(m, scan, data, data + size, block)) {
            return 0;
        }
    }
    return 1;
}

/* ScopeSpans: scope = 1, spans = 2. */
static int scan_scope_spans(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end, Py_ssize_t resource_block)
{
    return scan_block(m, scan, p, end, &scan->scopes, &scan->scope_count, &scan->scope_capacity, resource_block,
                      scan_span);
}

/* ResourceSpans: resource = 1, scope_spans = 2. */
static int scan_resource_spans(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end)
{
    return scan_block(m, scan, p, end, &scan->resources, &scan->resource_count, &scan->resource_capacity,
                      scan->resource_count, scan_scope_spans);
}

static int scan_request(const Mapper *m, Scan *scan, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data;
        Py_ssize_t size;
        if (!read_key(&p, end, &number, &wire))
            return 0;
        if (number == 1) {
            if (wire != 2 || !read_length(&p, end, &data, &size) || !scan_resource_spans(m, scan, data, data + size))
                return 0;
        } else if (!skip_field(&p, end, wire)) {
            return 0;
        }
    }
    return 1;
}

static void free_scan(Scan *scan)
{
    free(scan->attributes);
    free(scan->rows.data);
    free(scan->spans);
    free(scan->found);
    free(scan->resources);
    free(scan->scopes);
}

/* --- operations rows: the mapping view's rules, for the usual spans ------------- */
/*
 * For a span in the plain subset, pass one writes the columns of its
 * `operations` row that the span alone decides, in RowBinary, in the order
 * of clickhouse/staging.py's ROW_COLUMNS; the writer adds the rest
 * (`native_block` below). It follows clickhouse/mapping.py's view rule for
 * rule, and where it could differ from ClickHouse it writes no row and the
 * span goes through the view as before: a key sent twice, a value with no
 * member or two, a list or bytes value, an array of anything but plain
 * scalars, a double ClickHouse would write with an exponent, a count sent as
 * text other than digits, OpenInference's invocation parameters, a URL as
 * server address, a failed call whose error needs its exception event, more
 * attributes than the map keeps. tests/unit/test_direct_rows.py compares the
 * two row by row.
 */

enum { ROW_PLAIN = 1, ROW_UNUSUAL = 0, ROW_NO_MEMORY = -1 };

static int put_u64(Buffer *b, uint64_t value)
{
    uint8_t out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(value >> (8 * i));
    return put(b, out, 8);
}

/* A RowBinary String: its length as a varint, then its bytes. */
static int put_string(Buffer *b, const void *data, Py_ssize_t size)
{
    return put_varint(b, (uint64_t)size) && put(b, data, size);
}

/* ClickHouse's toString of a Float64 where it writes plain digits (0, and
 * 1e-6 <= |x| < 1e21): the shortest digits that read back as x, without an
 * exponent. -1 for the rest (-0, exponents, infinities, NaN). */
static int format_double(double x, char out[48])
{
    if (!isfinite(x))
        return -1;
    if (x == 0) {
        if (signbit(x))
            return -1;
        out[0] = '0';
        return 1;
    }
    double magnitude = fabs(x);
    if (magnitude < 1e-6 || magnitude >= 1e21)
        return -1;
    char text[40];
    int precision;
    for (precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision - 1, x);
        if (strtod(text, NULL) == x)
            break;
    }
    if (precision > 17)
        return -1;
    char digits[24];
    int count = 0, size = 0;
    const char *p = text;
    if (*p == '-') {
        out[size++] = '-';
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[count++] = *p;
    int exponent = atoi(p + 1);
    while (count > 1 && digits[count - 1] == '0')
        count--;
    if (exponent >= 0) {
        for (int i = 0; i <= exponent; i++)
            out[size++] = i < count ? digits[i] : '0';
        if (count > exponent + 1) {
            out[size++] = '.';
            for (int i = exponent + 1; i < count; i++)
                out[size++] = digits[i];
        }
    } else {
        out[size++] = '0';
        out[size++] = '.';
        for (int i = 0; i < -exponent - 1; i++)
            out[size++] = '0';
        for (int i = 0; i < count; i++)
            out[size++] = digits[i];
    }
    return size;
}

/* A value as the view's text: strings as they are, booleans and numbers as
 * ClickHouse's toString writes them, an array as JSON of its scalars (`in_array`:
 * one of them, strings quoted). */
static int render(Buffer *b, const Value *v, int in_array)
{
    char number[48];
    int size;
    if (v->members != 1)
        return ROW_UNUSUAL;
    switch (v->kind) {
    case KIND_STRING:
        if (!in_array)
            return put(b, v->data, v->size) ? ROW_PLAIN : ROW_NO_MEMORY;
        for (Py_ssize_t i = 0; i < v->size; i++) {
            uint8_t c = v->data[i];
            if (c < 0x20 || c > 0x7E || c == '"' || c == '\\' || c == '/')
                return ROW_UNUSUAL; /* toJSONString would escape it */
        }
        return put(b, "\"", 1) && put(b, v->data, v->size) && put(b, "\"", 1) ? ROW_PLAIN : ROW_NO_MEMORY;
    case KIND_BOOL:
        if ((uint64_t)v->integer > 1)
            return ROW_UNUSUAL;
        return (v->integer ? put(b, "true", 4) : put(b, "false", 5)) ? ROW_PLAIN : ROW_NO_MEMORY;
    case KIND_INT:
        size = snprintf(number, sizeof number, "%lld", (long long)v->integer);
        return put(b, number, size) ? ROW_PLAIN : ROW_NO_MEMORY;
    case KIND_DOUBLE:
        size = format_double(v->number, number);
        if (size < 0)
            return ROW_UNUSUAL;
        return put(b, number, size) ? ROW_PLAIN : ROW_NO_MEMORY;
    case KIND_ARRAY: {
        if (in_array)
            return ROW_UNUSUAL;
        const uint8_t *p = v->data, *end = v->data + v->size;
        int items = 0;
        if (!put(b, "[", 1))
            return ROW_NO_MEMORY;
        while (p < end) {
            uint32_t number_field;
            int wire;
            const uint8_t *item = NULL;
            Py_ssize_t item_size = 0;
            if (!next_field(&p, end, &number_field, &wire, &item, &item_size) || (number_field == 1 && wire != 2))
                return ROW_UNUSUAL;
            if (number_field != 1)
                continue;
            Value element = {NULL, 0, 0, 0.0, KIND_NONE, 0};
            if (!scan_any_value(item, item + item_size, &element, 0))
                return ROW_UNUSUAL;
            if (items++ && !put(b, ", ", 2))
                return ROW_NO_MEMORY;
            int done = render(b, &element, 1);
            if (done != ROW_PLAIN)
                return done;
        }
        if (!items)
            return ROW_UNUSUAL;
        return put(b, "]", 1) ? ROW_PLAIN : ROW_NO_MEMORY;
    }
    default:
        return ROW_UNUSUAL; /* lists and bytes */
    }
}

typedef struct {
    const Attribute *attributes;
    Py_ssize_t count;
    Buffer *text; /* scratch: the text of the value read last */
    int16_t position[MAX_KEYS]; /* key index -> its entry, -1 when absent */
} SpanAttributes;

/* The entry of key `index`, or NULL (keys are unique in a span that gets a row). */
static const Attribute *entry_of(const SpanAttributes *a, int index)
{
    return a->position[index] < 0 ? NULL : &a->attributes[a->position[index]];
}

/* Into a->text the text of key `index` ('' when absent). */
static int text_of(const SpanAttributes *a, int index)
{
    a->text->size = 0;
    const Attribute *entry = index >= 0 ? entry_of(a, index) : NULL;
    return entry ? render(a->text, &entry->value, 0) : ROW_PLAIN;
}

/* Into a->text the first non-empty text among a field's aliases (the view's `_first_text`). */
static int first_text(const Mapper *m, const SpanAttributes *a, int field)
{
    for (int i = 0; i < m->field_sizes[field]; i++) {
        int done = text_of(a, m->fields[field][i]);
        if (done != ROW_PLAIN || a->text->size)
            return done;
    }
    return ROW_PLAIN;
}

/* A value as the view's `_count` reads it: a whole number in [0, 1e18), -1 when
 * it is none (the next alias is tried), -2 outside the plain subset. */
static int64_t count_of(const Value *v)
{
    char text[48];
    switch (v->kind) {
    case KIND_INT:
        if (v->integer < 0)
            return -1;
        return v->integer <= ((int64_t)1 << 53) ? v->integer : -2; /* exact as a Float64 */
    case KIND_DOUBLE:
        if (format_double(v->number, text) < 0)
            return -2;
        return v->number >= 0 && v->number < 1e18 && floor(v->number) == v->number ? (int64_t)v->number : -1;
    case KIND_STRING: {
        if (v->size == 0)
            return -1;
        if (v->size > 15)
            return -2;
        int64_t count = 0;
        for (Py_ssize_t i = 0; i < v->size; i++) {
            if (v->data[i] < '0' || v->data[i] > '9')
                return -2;
            count = count * 10 + (v->data[i] - '0');
        }
        return count;
    }
    case KIND_BOOL:  /* 'true' is not a number */
    case KIND_ARRAY: /* nor '[...]' */
        return -1;
    default:
        return -2;
    }
}

/* The first usable count among a field's aliases: -1 none, -2 outside the plain subset. */
static int64_t first_count(const Mapper *m, const SpanAttributes *a, int field)
{
    for (int i = 0; i < m->field_sizes[field]; i++) {
        const Attribute *entry = entry_of(a, m->fields[field][i]);
        if (!entry)
            continue;
        int64_t count = count_of(&entry->value);
        if (count != -1)
            return count;
    }
    return -1;
}

static int same_bytes(const void *a, Py_ssize_t a_size, const void *b, Py_ssize_t b_size)
{
    return a_size == b_size && memcmp(a, b, (size_t)a_size) == 0;
}

/* The view's `_first_flag`: the first alias present decides (true, 1 or yes, any case). */
static int first_flag(const Mapper *m, const SpanAttributes *a, int field, int *flag)
{
    *flag = 0;
    for (int i = 0; i < m->field_sizes[field]; i++) {
        if (!entry_of(a, m->fields[field][i]))
            continue;
        int done = text_of(a, m->fields[field][i]);
        if (done != ROW_PLAIN)
            return done;
        char lowered[4];
        Py_ssize_t size = a->text->size;
        for (Py_ssize_t c = 0; c < size && c < 4; c++) {
            char ch = a->text->data[c];
            lowered[c] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        *flag = same_bytes(lowered, size, "true", 4) || same_bytes(lowered, size, "1", 1) ||
                same_bytes(lowered, size, "yes", 3);
        return ROW_PLAIN;
    }
    return ROW_PLAIN;
}

/* A value of the attributes map: cut at the view's length in characters, with an ellipsis. */
static int put_map_value(const Mapper *m, Buffer *b, const Buffer *text)
{
    Py_ssize_t size = text->size;
    if (size > m->max_value_chars) {
        Py_ssize_t chars = 0, cut = -1;
        for (Py_ssize_t i = 0; i < size; i++) {
            if (((uint8_t)text->data[i] & 0xC0) == 0x80)
                continue;
            if (chars == m->max_value_chars)
                cut = i;
            if (++chars > m->max_value_chars && cut >= 0)
                break;
        }
        if (cut >= 0)
            return put_varint(b, (uint64_t)cut + 3) && put(b, text->data, cut) && put(b, "\xE2\x80\xA6", 3);
    }
    return put_string(b, text->data, size);
}

typedef struct {
    const uint8_t *text[2];
    Py_ssize_t size[2];
    int plain;
} BlockTexts;

/* A resource's service.name (the view's arrayFirst over its attributes: the
 * first entry with that key, its string member or ''). */
static void resource_texts(const Mapper *m, const Block *block, BlockTexts *out)
{
    const uint8_t *p = block->bytes, *end = block->bytes + block->size;
    int found = 0;
    *out = (BlockTexts){{(const uint8_t *)"", (const uint8_t *)""}, {0, 0}, block->fields <= 1};
    while (out->plain && p < end) {
        uint32_t number;
        int wire;
        const uint8_t *entry = NULL, *data = NULL;
        Py_ssize_t entry_size = 0, size = 0;
        if (!next_field(&p, end, &number, &wire, &entry, &entry_size) || (number == 1 && wire != 2)) {
            out->plain = 0;
            break;
        }
        if (number != 1)
            continue;
        const uint8_t *q = entry, *entry_end = entry + entry_size, *key = (const uint8_t *)"";
        Py_ssize_t key_size = 0;
        int keys = 0, values = 0;
        Value value = {NULL, 0, 0, 0.0, KIND_NONE, 0};
        while (out->plain && q < entry_end) {
            if (!next_pair_field(&q, entry_end, &number, &data, &size)) {
                out->plain = 0;
            } else if (number == 1) {
                key = data;
                key_size = size;
                keys++;
            } else if (number == 2) {
                values++;
                out->plain = scan_any_value(data, data + size, &value, 1);
            }
        }
        if (keys != 1 || values > 1 || value.members > 1)
            out->plain = 0;
        if (out->plain && !found && same_bytes(key, key_size, m->service_key, m->service_key_size)) {
            found = 1;
            if (value.kind == KIND_STRING) {
                out->text[0] = value.data;
                out->size[0] = value.size;
            }
        }
    }
}

/* A scope's name and version (each once, as strings). */
static void scope_texts(const Block *block, BlockTexts *out)
{
    const uint8_t *p = block->bytes, *end = block->bytes + block->size;
    int seen[2] = {0, 0};
    *out = (BlockTexts){{(const uint8_t *)"", (const uint8_t *)""}, {0, 0}, block->fields <= 1};
    while (out->plain && p < end) {
        uint32_t number;
        const uint8_t *data = NULL;
        Py_ssize_t size = 0;
        if (!next_pair_field(&p, end, &number, &data, &size)) {
            out->plain = 0;
        } else if (number == 1 || number == 2) {
            if (!valid_utf8(data, size) || seen[number - 1]++) {
                out->plain = 0;
            } else {
                out->text[number - 1] = data;
                out->size[number - 1] = size;
            }
        }
    }
}

static int put_hex(Buffer *b, const uint8_t *p, Py_ssize_t size)
{
    static const char digits[] = "0123456789abcdef";
    if (!put_varint(b, (uint64_t)size * 2) || !reserve(b, size * 2))
        return 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        b->data[b->size++] = digits[p[i] >> 4];
        b->data[b->size++] = digits[p[i] & 15];
    }
    return 1;
}

#define WRITE(expression)                                                                                  \
    do {                                                                                                   \
        if (!(expression))                                                                                 \
            return ROW_NO_MEMORY;                                                                          \
    } while (0)
#define READ(expression)                                                                                   \
    do {                                                                                                   \
        int done_ = (expression);                                                                          \
        if (done_ != ROW_PLAIN)                                                                            \
            return done_;                                                                                  \
    } while (0)

/* The span's row into `row` (ROW_COLUMNS order); `text` and `pairs` are scratch. */
static int write_row(const Mapper *m, const SpanDesc *span, const BlockTexts *resource, const BlockTexts *scope,
                     const Attribute *attributes, Buffer *row, Buffer *text, Buffer *pairs)
{
    SpanAttributes a = {attributes, span->attribute_count, text, {0}};
    if (!resource->plain || !scope->plain || span->repeated_fields || span->end < span->start ||
        span->attribute_count > m->max_attributes)
        return ROW_UNUSUAL;
    memset(a.position, 0xFF, sizeof(int16_t) * (size_t)m->key_count);
    const Attribute *operation = NULL;
    for (Py_ssize_t i = 0; i < a.count; i++) {
        const Attribute *entry = &attributes[i];
        if (entry->keys_seen != 1 || entry->values_seen != 1 || entry->value.members != 1 ||
            entry->index == m->invocation_key)
            return ROW_UNUSUAL;
        if (entry->index >= 0) {
            if (a.position[entry->index] >= 0)
                return ROW_UNUSUAL;
            a.position[entry->index] = (int16_t)i;
            continue; /* a known key: the table above finds it sent twice */
        }
        for (Py_ssize_t j = 0; j < i; j++)
            if (attributes[j].index < 0 && same_bytes(attributes[j].key, attributes[j].key_size, entry->key, entry->key_size))
                return ROW_UNUSUAL;
    }
    for (int i = 0; i < m->operation_count && !operation; i++)
        operation = entry_of(&a, m->operation[i]);
    if (!operation || operation->value.kind != KIND_STRING)
        return ROW_UNUSUAL; /* not a model call, or one pass two hands back */

    WRITE(put_u64(row, span->start));
    WRITE(put_hex(row, span->trace, span->trace_size));
    WRITE(put_hex(row, span->span, span->span_size));
    WRITE(put_hex(row, span->parent, span->parent_size));
    WRITE(put(row, "\x01", 1)); /* sign */
    WRITE(put_string(row, resource->text[0], resource->size[0]));
    WRITE(put_string(row, scope->text[0], scope->size[0]));
    WRITE(put_string(row, scope->text[1], scope->size[1]));
    WRITE(put_string(row, span->name, span->name_size));

    READ(first_text(m, &a, F_PROVIDER));
    const char *provider = text->data;
    Py_ssize_t provider_size = text->size;
    char lowered[64];
    int known = -1;
    if (provider_size <= (Py_ssize_t)sizeof lowered) {
        for (Py_ssize_t c = 0; c < provider_size; c++)
            lowered[c] = provider[c] >= 'A' && provider[c] <= 'Z' ? (char)(provider[c] + 32) : provider[c];
        for (int i = 0; i < m->provider_count && known < 0; i++)
            if (same_bytes(lowered, provider_size, m->provider_from[i], m->provider_from_size[i]))
                known = i;
    } else {
        return ROW_UNUSUAL;
    }
    if (known >= 0)
        WRITE(put_string(row, m->provider_to[known], m->provider_to_size[known]));
    else
        WRITE(put_string(row, lowered, provider_size));
    WRITE(put_string(row, provider, provider_size));

    READ(first_text(m, &a, F_REQUEST_BEFORE));
    if (!text->size)
        READ(first_text(m, &a, F_REQUEST_AFTER));
    WRITE(put_string(row, text->data, text->size));
    READ(first_text(m, &a, F_RESPONSE));
    WRITE(put_string(row, text->data, text->size));

    int64_t counts[6];
    static const int count_fields[6] = {F_INPUT, F_OUTPUT, F_TOTAL, F_CACHE_READ, F_CACHE_WRITE, F_REASONING};
    for (int i = 0; i < 6; i++)
        if ((counts[i] = first_count(m, &a, count_fields[i])) == -2)
            return ROW_UNUSUAL;
    uint64_t input = counts[0] < 0 ? 0 : (uint64_t)counts[0], output = counts[1] < 0 ? 0 : (uint64_t)counts[1];
    WRITE(put_u64(row, input));
    WRITE(put_u64(row, output));
    WRITE(put_u64(row, counts[2] < 0 ? input + output : (uint64_t)counts[2]));
    for (int i = 3; i < 6; i++)
        WRITE(put_u64(row, counts[i] < 0 ? 0 : (uint64_t)counts[i]));
    WRITE(put_u64(row, span->end - span->start));

    READ(text_of(&a, m->error_key));
    int failed = span->status == m->status_error || text->size > 0;
    if (failed && (text->size == 0 || span->status_message_size == 0))
        return ROW_UNUSUAL; /* the error comes from the exception event, which pass two reads */
    WRITE(put(row, failed ? "\x00" : "\x01", 1)); /* succeeded */
    if (failed) {
        WRITE(put_string(row, text->data, text->size));
        WRITE(put_string(row, span->status_message, span->status_message_size));
    } else {
        WRITE(put_string(row, "", 0) && put_string(row, "", 0));
    }

    int streaming;
    READ(first_flag(m, &a, F_STREAMING, &streaming));
    for (int i = 0; i < m->streaming_operation_count && !streaming; i++)
        streaming = same_bytes(operation->value.data, operation->value.size, m->streaming_operation[i],
                               m->streaming_operation_size[i]);
    WRITE(put(row, streaming ? "\x01" : "\x00", 1));
    READ(first_text(m, &a, F_CONVERSATION));
    WRITE(put_string(row, text->data, text->size));
    READ(first_text(m, &a, F_SERVER));
    for (Py_ssize_t c = 0; c + 2 < text->size; c++)
        if (memcmp(text->data + c, "://", 3) == 0)
            return ROW_UNUSUAL; /* the view takes its domain() */
    WRITE(put_string(row, text->data, text->size));

    uint64_t kept = 0;
    pairs->size = 0;
    for (Py_ssize_t i = 0; i < a.count; i++) {
        const Attribute *entry = &attributes[i];
        if (entry->index >= 0 && m->mapped[entry->index])
            continue;
        text->size = 0;
        READ(render(text, &entry->value, 0));
        WRITE(put_string(pairs, entry->key, entry->key_size));
        WRITE(put_map_value(m, pairs, text));
        kept++;
    }
    WRITE(put_varint(row, kept));
    WRITE(put(row, pairs->data, pairs->size));
    return ROW_PLAIN;
}

/* Pass one's last step: the row of every span that names an operation. */
static int write_rows(const Mapper *m, Scan *scan)
{
    BlockTexts *resources = malloc(sizeof(BlockTexts) * (size_t)(scan->resource_count + 1));
    BlockTexts *scopes = malloc(sizeof(BlockTexts) * (size_t)(scan->scope_count + 1));
    Buffer text = {NULL, 0, 0}, pairs = {NULL, 0, 0};
    int ok = resources && scopes;
    for (Py_ssize_t i = 0; ok && i < scan->resource_count; i++)
        resource_texts(m, &scan->resources[i], &resources[i]);
    for (Py_ssize_t i = 0; ok && i < scan->scope_count; i++)
        scope_texts(&scan->scopes[i], &scopes[i]);
    for (Py_ssize_t i = 0; ok && i < scan->span_count; i++) {
        SpanDesc *span = &scan->spans[i];
        const Block *scope = &scan->scopes[span->scope_block];
        Py_ssize_t start = scan->rows.size;
        int done = write_row(m, span, &resources[scope->resource_block], &scopes[span->scope_block],
                             scan->attributes + span->attribute_start, &scan->rows, &text, &pairs);
        if (done == ROW_PLAIN) {
            span->row_start = start;
            span->row_size = scan->rows.size - start;
        } else {
            scan->rows.size = start;
            ok = done != ROW_NO_MEMORY;
        }
    }
    free(resources);
    free(scopes);
    free(text.data);
    free(pairs.data);
    return ok;
}

/* --- pass two: Python objects -------------------------------------------------- */

static PyObject *hex_text(const uint8_t *p, Py_ssize_t size)
{
    static const char digits[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(size * 2, 127);
    if (!text)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < size; i++) {
        out[2 * i] = (Py_UCS1)digits[p[i] >> 4];
        out[2 * i + 1] = (Py_UCS1)digits[p[i] & 15];
    }
    return text;
}

static int is_id(const uint8_t *p, Py_ssize_t size, Py_ssize_t wanted)
{
    if (size != wanted)
        return 0;
    for (Py_ssize_t i = 0; i < size; i++)
        if (p[i])
            return 1;
    return 0;
}

/* The outcome of reading one span's mapped keys. */
enum { USABLE = 1, GIVE_UP = 0 };

static const Value *lookup(const Scan *scan, const SpanDesc *span, int key)
{
    const Found *found = scan->found + span->found_start;
    for (Py_ssize_t i = 0; i < span->found_count; i++)
        if (found[i].key == key)
            return &found[i].value;
    return NULL;
}

/* The configured context keys present with a non-empty string, as a new dict
 * (NULL with no error: a value of another type, left to the Python path). */
static PyObject *context_of(const Mapper *m, const Scan *scan, const SpanDesc *span, int *give_up)
{
    PyObject *context = PyDict_New();
    if (!context)
        return NULL;
    for (int i = 0; i < m->context_count; i++) {
        const Value *value = lookup(scan, span, m->context[i]);
        if (!value || value->kind == KIND_NONE || (value->kind == KIND_STRING && value->size == 0))
            continue;
        if (value->kind != KIND_STRING) {
            *give_up = 1;
            Py_DECREF(context);
            return NULL;
        }
        PyObject *text = PyUnicode_DecodeUTF8((const char *)value->data, value->size, NULL);
        if (!text || PyDict_SetItem(context, m->key_objects[m->context[i]], text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(context);
            return NULL;
        }
        Py_DECREF(text);
    }
    return context;
}

static int same_text(PyObject *text, const uint8_t *p, Py_ssize_t size, int transform)
{
    /* table values are ASCII; `transform` 0 exact, 1 lower-cased, 2 upper-cased */
    if (PyUnicode_GET_LENGTH(text) != size || !PyUnicode_IS_ASCII(text))
        return 0;
    const Py_UCS1 *t = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < size; i++) {
        uint8_t c = p[i];
        if (transform == 1 && c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        else if (transform == 2 && c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 32);
        if (t[i] != c)
            return 0;
    }
    return 1;
}

/* Into *capability the capability of a model call (borrowed), NULL when the span
 * is none, and into *operation the operation value it was matched by; GIVE_UP
 * for a value the Python path turns into text. */
static int capability_of(const Mapper *m, const Scan *scan, const SpanDesc *span, PyObject **capability,
                         const Value **operation)
{
    *capability = NULL;
    for (int i = 0; i < m->operation_count; i++) {
        const Value *value = lookup(scan, span, m->operation[i]);
        if (!value)
            continue;
        if (value->kind == KIND_NONE)
            return USABLE; /* its text is 'None': no model call */
        if (value->kind != KIND_STRING)
            return GIVE_UP;
        for (Py_ssize_t c = 0; c < value->size; c++)
            if (value->data[c] >= 0x80)
                return GIVE_UP;
        for (int transform = 0; transform < 3; transform++)
            for (int k = 0; k < m->call_count; k++)
                if (m->call_key[k] == m->operation[i] && same_text(m->call_value[k], value->data, value->size, transform)) {
                    *capability = m->call_capability[k];
                    *operation = value;
                    return USABLE;
                }
        return USABLE;
    }
    return USABLE;
}

/* Whether the call reports tokens (ingest.mapping._reports_tokens): -1 gives up. */
static int reports_tokens(const Mapper *m, const Scan *scan, const SpanDesc *span)
{
    for (int g = 0; g < m->token_groups; g++) {
        for (int a = 0; a < m->token_sizes[g]; a++) {
            const Value *value = lookup(scan, span, m->tokens[g][a]);
            if (!value)
                continue;
            double count;
            if (value->kind == KIND_INT)
                count = (double)value->integer;
            else if (value->kind == KIND_DOUBLE)
                count = value->number;
            else if (value->kind == KIND_STRING || value->kind == KIND_BYTES)
                return -1; /* text read as a number: left to the Python path */
            else
                continue; /* bool, unset, array, list: not a count, the next alias is tried */
            if (!(count >= 0 && count < 1e18 && floor(count) == count))
                continue;
            if (count > 0)
                return 1;
            break;
        }
    }
    return 0;
}

static PyObject *events_of(const SpanDesc *span)
{
    PyObject *events = PyList_New(0);
    const uint8_t *p = span->bytes, *end = span->bytes + span->size;
    while (events && p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data;
        Py_ssize_t size;
        if (!read_key(&p, end, &number, &wire))
            break;
        if (number == 11 && wire == 2) {
            if (!read_length(&p, end, &data, &size))
                break;
            PyObject *event = PyBytes_FromStringAndSize((const char *)data, size);
            if (!event || PyList_Append(events, event) < 0) {
                Py_XDECREF(event);
                Py_CLEAR(events);
            } else {
                Py_DECREF(event);
            }
        } else if (!skip_field(&p, end, wire)) {
            break;
        }
    }
    return events;
}

typedef struct {
    PyObject *resource, *context; /* from make_resource */
} ResourceInfo;

typedef struct {
    PyObject *scope;
    int ignored;
} ScopeInfo;

/* What make_resource or make_scope makes of a block's bytes: a new 2-tuple, or
 * NULL (an error, or *give_up when the maker returned None). */
static PyObject *made_pair(PyObject *maker, const Block *block, int *give_up)
{
    PyObject *raw = PyBytes_FromStringAndSize((const char *)block->bytes, block->size);
    PyObject *made = raw ? PyObject_CallOneArg(maker, raw) : NULL;
    Py_XDECREF(raw);
    if (made == Py_None) {
        Py_DECREF(made);
        *give_up = 1;
        return NULL;
    }
    if (made && (!PyTuple_Check(made) || PyTuple_GET_SIZE(made) != 2)) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "make_resource and make_scope return a pair or None");
        return NULL;
    }
    return made;
}

/* Builds (facts, candidates, span count); returns Py_None (new ref) to give up. */
static PyObject *build(Mapper *m, Scan *scan, uint64_t oldest)
{
    PyObject *result = NULL, *facts = NULL, *candidates = NULL;
    ResourceInfo *resources = calloc((size_t)scan->resource_count + 1, sizeof *resources);
    ScopeInfo *scopes = calloc((size_t)scan->scope_count + 1, sizeof *scopes);
    int give_up = 0;
    if (!resources || !scopes) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < scan->resource_count; i++) {
        PyObject *made = made_pair(m->make_resource, &scan->resources[i], &give_up);
        if (!made)
            goto done;
        resources[i].resource = Py_NewRef(PyTuple_GET_ITEM(made, 0));
        resources[i].context = Py_NewRef(PyTuple_GET_ITEM(made, 1));
        Py_DECREF(made);
    }
    for (Py_ssize_t i = 0; i < scan->scope_count; i++) {
        PyObject *made = made_pair(m->make_scope, &scan->scopes[i], &give_up);
        if (!made)
            goto done;
        scopes[i].scope = Py_NewRef(PyTuple_GET_ITEM(made, 0));
        scopes[i].ignored = PyObject_IsTrue(PyTuple_GET_ITEM(made, 1));
        Py_DECREF(made);
        if (scopes[i].ignored < 0)
            goto done;
    }

    facts = PyList_New(scan->span_count);
    candidates = PyList_New(0);
    if (!facts || !candidates)
        goto done;
    for (Py_ssize_t i = 0; i < scan->span_count; i++) {
        const SpanDesc *span = &scan->spans[i];
        const ScopeInfo *scope = &scopes[span->scope_block];
        const ResourceInfo *resource = &resources[scan->scopes[span->scope_block].resource_block];
        PyObject *capability = NULL;
        const Value *operation = NULL;
        if (capability_of(m, scan, span, &capability, &operation) == GIVE_UP) {
            give_up = 1;
            goto done;
        }
        int is_call = capability != NULL && !scope->ignored;
        int has_tokens = 0;
        if (is_call) {
            /* A call Python would reject: it words the rejection. */
            if (!is_id(span->trace, span->trace_size, 16) || !is_id(span->span, span->span_size, 8) ||
                (span->parent_size && !is_id(span->parent, span->parent_size, 8)) || span->start < m->min_start ||
                span->start > m->max_start || span->end < span->start || span->start < oldest) {
                give_up = 1;
                goto done;
            }
            has_tokens = reports_tokens(m, scan, span);
            if (has_tokens < 0) {
                give_up = 1;
                goto done;
            }
        }
        PyObject *context = context_of(m, scan, span, &give_up);
        if (!context)
            goto done;
        PyObject *trace = hex_text(span->trace, span->trace_size);
        PyObject *span_id = hex_text(span->span, span->span_size);
        PyObject *parent = hex_text(span->parent, span->parent_size);
        PyObject *start = PyLong_FromUnsignedLongLong(span->start);
        PyObject *end = PyLong_FromUnsignedLongLong(span->end);
        PyObject *fact = NULL;
        if (trace && span_id && parent && start && end) {
            PyObject *args[] = {trace, span_id, parent, start, end, PyDict_GET_SIZE(context) ? context : Py_None};
            fact = PyObject_Vectorcall(m->span_fact, args, 6, NULL);
        }
        if (fact)
            PyList_SET_ITEM(facts, i, fact);
        if (fact && is_call) {
            PyObject *name = PyUnicode_DecodeUTF8((const char *)span->name, span->name_size, NULL);
            PyObject *status = PyLong_FromLong(span->status);
            PyObject *payload = PyBytes_FromStringAndSize((const char *)span->bytes, span->size);
            int failed = span->status == m->status_error || lookup(scan, span, m->error_key) != NULL;
            PyObject *events = failed ? events_of(span) : Py_NewRef(m->no_events);
            PyObject *operation_text = PyUnicode_DecodeASCII((const char *)operation->data, operation->size, NULL);
            PyObject *record = NULL, *exception = NULL, *model_call = NULL, *key = NULL, *candidate = NULL;
            if (name && status && payload && events && operation_text) {
                PyObject *args[] = {trace, span_id, parent, name, start, end, status, Py_None, events,
                                    resource->resource, scope->scope, payload};
                record = PyObject_Vectorcall(m->span_record, args, 12, NULL);
            }
            if (record)
                exception = failed ? PyObject_CallMethod(record, "exception", NULL) : Py_NewRef(m->no_exception);
            PyObject *row = span->row_size >= 0
                                ? PyBytes_FromStringAndSize(scan->rows.data + span->row_start, span->row_size)
                                : Py_NewRef(Py_None);
            if (exception && row) {
                PyObject *args[] = {record, capability, operation_text, has_tokens ? Py_True : Py_False, exception, row};
                model_call = PyObject_Vectorcall(m->model_call, args, 6, NULL);
            }
            Py_XDECREF(row);
            if (model_call)
                key = PyTuple_Pack(2, trace, span_id);
            if (key) {
                PyObject *args[] = {model_call, context, resource->context, key};
                candidate = PyObject_Vectorcall(m->candidate, args, 4, NULL);
            }
            int appended = candidate && PyList_Append(candidates, candidate) == 0;
            Py_XDECREF(name);
            Py_XDECREF(status);
            Py_XDECREF(payload);
            Py_XDECREF(events);
            Py_XDECREF(operation_text);
            Py_XDECREF(record);
            Py_XDECREF(exception);
            Py_XDECREF(model_call);
            Py_XDECREF(key);
            Py_XDECREF(candidate);
            if (!appended)
                fact = NULL;
        }
        Py_XDECREF(trace);
        Py_XDECREF(span_id);
        Py_XDECREF(parent);
        Py_XDECREF(start);
        Py_XDECREF(end);
        Py_DECREF(context);
        if (!fact)
            goto done;
    }
    result = Py_BuildValue("(OOn)", facts, candidates, scan->span_count);

done:
    if (give_up && !PyErr_Occurred()) {
        Py_XDECREF(result);
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(facts);
    Py_XDECREF(candidates);
    for (Py_ssize_t i = 0; resources && i < scan->resource_count; i++) {
        Py_XDECREF(resources[i].resource);
        Py_XDECREF(resources[i].context);
    }
    for (Py_ssize_t i = 0; scopes && i < scan->scope_count; i++)
        Py_XDECREF(scopes[i].scope);
    free(resources);
    free(scopes);
    return result;
}

static PyObject *Mapper_map(Mapper *m, PyObject *const *args, Py_ssize_t count)
{
    if (count != 2) {
        PyErr_SetString(PyExc_TypeError, "map(body, oldest_start_ns)");
        return NULL;
    }
    Py_buffer body;
    if (PyObject_GetBuffer(args[0], &body, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned long long oldest = PyLong_AsUnsignedLongLong(args[1]);
    if (oldest == (unsigned long long)-1 && PyErr_Occurred()) {
        PyBuffer_Release(&body);
        return NULL;
    }
    Scan scan;
    memset(&scan, 0, sizeof scan);
    int scanned;
    const uint8_t *start = (const uint8_t *)body.buf;
    Py_BEGIN_ALLOW_THREADS
    scanned = scan_request(m, &scan, start, start + body.len) && (!m->row_plan || write_rows(m, &scan));
    Py_END_ALLOW_THREADS
    PyObject *result = scanned ? build(m, &scan, oldest) : Py_NewRef(Py_None);
    free_scan(&scan);
    PyBuffer_Release(&body);
    return result;
}

/* --- construction ------------------------------------------------------------------- */

static int add_key(Mapper *m, PyObject *key)
{
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "attribute keys must be str");
        return -1;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(key, &size);
    if (!text)
        return -1;
    int existing = find_key(m, (const uint8_t *)text, size);
    if (existing >= 0)
        return existing;
    if (m->key_count == MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "too many attribute keys for the compiled mapper");
        return -1;
    }
    int index = m->key_count++;
    m->key_objects[index] = Py_NewRef(key);
    m->key_text[index] = text; /* owned by the str, which the mapper keeps */
    m->key_size[index] = size;
    uint32_t slot = hash_key((const uint8_t *)text, size) & (TABLE_SIZE - 1);
    while (m->table[slot] >= 0)
        slot = (slot + 1) & (TABLE_SIZE - 1);
    m->table[slot] = (int16_t)index;
    return index;
}

static int add_keys(Mapper *m, PyObject *keys, int *out, int limit, int *count)
{
    PyObject *sequence = PySequence_Fast(keys, "expected a sequence of keys");
    if (!sequence)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(sequence);
    if (n > limit) {
        Py_DECREF(sequence);
        PyErr_SetString(PyExc_ValueError, "too many keys for the compiled mapper");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int index = add_key(m, PySequence_Fast_GET_ITEM(sequence, i));
        if (index < 0) {
            Py_DECREF(sequence);
            return -1;
        }
        out[i] = index;
    }
    *count = (int)n;
    Py_DECREF(sequence);
    return 0;
}

/* A string the mapper keeps, as UTF-8. */
static int keep_text(Mapper *m, PyObject *text, const char **data, Py_ssize_t *size)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "row plan names must be str");
        return -1;
    }
    if (m->name_count == 3 * MAX_NAMES + 1) {
        PyErr_SetString(PyExc_ValueError, "too many names for the compiled mapper");
        return -1;
    }
    if (!(*data = PyUnicode_AsUTF8AndSize(text, size)))
        return -1;
    m->names[m->name_count++] = Py_NewRef(text);
    return 0;
}

/* row_plan: (field alias lists in F_ order, mapped keys, invocation key, service key,
 * provider spellings as (from, to), streaming operations, max value chars, max attributes) */
static int init_row_plan(Mapper *m, PyObject *plan)
{
    PyObject *fields, *mapped, *invocation, *service, *providers, *streaming;
    if (!PyArg_ParseTuple(plan, "OOUUOOnn", &fields, &mapped, &invocation, &service, &providers, &streaming,
                          &m->max_value_chars, &m->max_attributes))
        return -1;
    PyObject *lists = PySequence_Fast(fields, "row plan fields must be a sequence");
    if (!lists)
        return -1;
    if (PySequence_Fast_GET_SIZE(lists) != FIELD_COUNT) {
        Py_DECREF(lists);
        PyErr_SetString(PyExc_ValueError, "the row plan needs one alias list per field");
        return -1;
    }
    for (int f = 0; f < FIELD_COUNT; f++)
        if (add_keys(m, PySequence_Fast_GET_ITEM(lists, f), m->fields[f], MAX_ALIASES, &m->field_sizes[f]) < 0) {
            Py_DECREF(lists);
            return -1;
        }
    Py_DECREF(lists);
    int mapped_indexes[MAX_KEYS], mapped_count;
    if (add_keys(m, mapped, mapped_indexes, MAX_KEYS, &mapped_count) < 0)
        return -1;
    for (int i = 0; i < mapped_count; i++)
        m->mapped[mapped_indexes[i]] = 1;
    if ((m->invocation_key = add_key(m, invocation)) < 0 ||
        keep_text(m, service, &m->service_key, &m->service_key_size) < 0)
        return -1;
    PyObject *pairs = PySequence_Fast(providers, "provider names must be a sequence of pairs");
    if (!pairs)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(pairs); i++) {
        PyObject *from, *to;
        if (i == MAX_NAMES) {
            PyErr_SetString(PyExc_ValueError, "too many provider names for the compiled mapper");
            Py_DECREF(pairs);
            return -1;
        }
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(pairs, i), "UU", &from, &to) ||
            keep_text(m, from, &m->provider_from[i], &m->provider_from_size[i]) < 0 ||
            keep_text(m, to, &m->provider_to[i], &m->provider_to_size[i]) < 0) {
            Py_DECREF(pairs);
            return -1;
        }
        m->provider_count = (int)i + 1;
    }
    Py_DECREF(pairs);
    PyObject *operations = PySequence_Fast(streaming, "streaming operations must be a sequence");
    if (!operations)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(operations); i++) {
        if (i == MAX_NAMES ||
            keep_text(m, PySequence_Fast_GET_ITEM(operations, i), &m->streaming_operation[i],
                      &m->streaming_operation_size[i]) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "too many streaming operations for the compiled mapper");
            Py_DECREF(operations);
            return -1;
        }
        m->streaming_operation_count = (int)i + 1;
    }
    Py_DECREF(operations);
    m->row_plan = 1;
    return 0;
}

static int Mapper_init(Mapper *m, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"context_keys", "operation_keys", "model_calls", "token_groups", "error_key",
                            "timestamp_range", "status_error", "types", "make_resource", "make_scope", "row_plan", NULL};
    PyObject *context_keys, *operation_keys, *model_calls, *token_groups, *error_key, *types, *make_resource,
        *make_scope, *row_plan = Py_None;
    unsigned long long min_start, max_start;
    int status_error;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO(KK)iOOO|O", names, &context_keys, &operation_keys,
                                     &model_calls, &token_groups, &error_key, &min_start, &max_start, &status_error,
                                     &types, &make_resource, &make_scope, &row_plan))
        return -1;
    memset(m->table, 0xFF, sizeof m->table);
    if (add_keys(m, context_keys, m->context, MAX_KEYS, &m->context_count) < 0)
        return -1;
    if (add_keys(m, operation_keys, m->operation, MAX_OPERATION_KEYS, &m->operation_count) < 0)
        return -1;
    PyObject *calls = PySequence_Fast(model_calls, "model_calls must be a sequence of (key, value, capability)");
    if (!calls)
        return -1;
    if (PySequence_Fast_GET_SIZE(calls) > MAX_MODEL_CALLS) {
        Py_DECREF(calls);
        PyErr_SetString(PyExc_ValueError, "too many model calls for the compiled mapper");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(calls); i++) {
        PyObject *key, *value, *capability;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(calls, i), "UUU", &key, &value, &capability)) {
            Py_DECREF(calls);
            return -1;
        }
        int index = add_key(m, key);
        if (index < 0) {
            Py_DECREF(calls);
            return -1;
        }
        m->call_key[i] = index;
        m->call_value[i] = Py_NewRef(value);
        m->call_capability[i] = Py_NewRef(capability);
        m->call_count = (int)i + 1;
    }
    Py_DECREF(calls);
    PyObject *groups = PySequence_Fast(token_groups, "token_groups must be a sequence of key sequences");
    if (!groups)
        return -1;
    if (PySequence_Fast_GET_SIZE(groups) > MAX_GROUPS) {
        Py_DECREF(groups);
        PyErr_SetString(PyExc_ValueError, "too many token groups for the compiled mapper");
        return -1;
    }
    for (Py_ssize_t g = 0; g < PySequence_Fast_GET_SIZE(groups); g++) {
        if (add_keys(m, PySequence_Fast_GET_ITEM(groups, g), m->tokens[g], MAX_ALIASES, &m->token_sizes[g]) < 0) {
            Py_DECREF(groups);
            return -1;
        }
        m->token_groups = (int)g + 1;
    }
    Py_DECREF(groups);
    if ((m->error_key = add_key(m, error_key)) < 0)
        return -1;
    if (!PyArg_ParseTuple(types, "OOOO", &m->span_record, &m->span_fact, &m->model_call, &m->candidate))
        return -1;
    Py_INCREF(m->span_record);
    Py_INCREF(m->span_fact);
    Py_INCREF(m->model_call);
    Py_INCREF(m->candidate);
    m->make_resource = Py_NewRef(make_resource);
    m->make_scope = Py_NewRef(make_scope);
    m->min_start = min_start;
    m->max_start = max_start;
    m->status_error = status_error;
    m->no_events = PyTuple_New(0);
    m->no_exception = Py_BuildValue("(ss)", "", "");
    if (!m->no_events || !m->no_exception)
        return -1;
    return row_plan == Py_None ? 0 : init_row_plan(m, row_plan);
}

static PyObject *Mapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Mapper *m = (Mapper *)type->tp_alloc(type, 0);
    if (m)
        memset(m->table, 0xFF, sizeof m->table);
    return (PyObject *)m;
}

static void Mapper_dealloc(Mapper *m)
{
    for (int i = 0; i < m->key_count; i++)
        Py_XDECREF(m->key_objects[i]);
    for (int i = 0; i < m->call_count; i++) {
        Py_XDECREF(m->call_value[i]);
        Py_XDECREF(m->call_capability[i]);
    }
    Py_XDECREF(m->span_record);
    Py_XDECREF(m->span_fact);
    Py_XDECREF(m->model_call);
    Py_XDECREF(m->candidate);
    Py_XDECREF(m->make_resource);
    Py_XDECREF(m->make_scope);
    Py_XDECREF(m->no_events);
    Py_XDECREF(m->no_exception);
    for (int i = 0; i < m->name_count; i++)
        Py_XDECREF(m->names[i]);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyMethodDef Mapper_methods[] = {
    {"map", (PyCFunction)(void (*)(void))Mapper_map, METH_FASTCALL,
     "map(body, oldest_start_ns) -> (facts, candidates, span count), or None for the Python path"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MapperType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ingest._spanmap.Mapper",
    .tp_basicsize = sizeof(Mapper),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decodes and maps an OTLP protobuf export in one compiled pass (see ingest/fastmap.py).",
    .tp_new = Mapper_new,
    .tp_init = (initproc)Mapper_init,
    .tp_dealloc = (destructor)Mapper_dealloc,
    .tp_methods = Mapper_methods,
};


/* --- staged rows: clickhouse/staging.py's protobuf_row, compiled ----------------- */

static int put_bytes_field(Buffer *b, uint32_t number, const char *data, Py_ssize_t size)
{
    return put_varint(b, (uint64_t)number << 3 | 2) && put_varint(b, (uint64_t)size) && put(b, data, size);
}

/* A string field, left out when empty (proto3). */
static int put_text_field(Buffer *b, uint32_t number, PyObject *text)
{
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (!data)
        return 0;
    return size == 0 || put_bytes_field(b, number, data, size);
}

static int put_fixed64_field(Buffer *b, uint32_t number, uint64_t value)
{
    uint8_t out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(value >> (8 * i));
    return put_varint(b, (uint64_t)number << 3 | 1) && put(b, out, 8);
}

static PyObject *name_call, *name_record, *name_version, *name_context, *name_capability, *name_operation,
    *name_exception, *name_trace_id, *name_span_id, *name_parent_span_id, *name_start_ns, *name_end_ns,
    *name_payload, *name_resource, *name_scope, *name_row;

static int bytes_of(PyObject *owner, PyObject *name, PyObject **held, const char **data, Py_ssize_t *size)
{
    *held = PyObject_GetAttr(owner, name);
    if (!*held)
        return 0;
    if (!PyBytes_Check(*held)) {
        PyErr_SetString(PyExc_TypeError, "a protobuf row needs bytes payloads");
        return 0;
    }
    *data = PyBytes_AS_STRING(*held);
    *size = PyBytes_GET_SIZE(*held);
    return 1;
}

/* One IncomingSpan's Decision (clickhouse/incoming_span.proto) into `b`. */
static int put_decision(Buffer *b, PyObject *staged, PyObject *call, PyObject *record)
{
    PyObject *held[10] = {NULL};
    int ok = 0;
    unsigned long long start, end, version;
    held[0] = PyObject_GetAttr(record, name_trace_id);
    held[1] = held[0] ? PyObject_GetAttr(record, name_span_id) : NULL;
    held[2] = held[1] ? PyObject_GetAttr(record, name_parent_span_id) : NULL;
    held[3] = held[2] ? PyObject_GetAttr(record, name_start_ns) : NULL;
    held[4] = held[3] ? PyObject_GetAttr(record, name_end_ns) : NULL;
    held[5] = held[4] ? PyObject_GetAttr(staged, name_version) : NULL;
    held[6] = held[5] ? PyObject_GetAttr(call, name_capability) : NULL;
    held[7] = held[6] ? PyObject_GetAttr(call, name_operation) : NULL;
    held[8] = held[7] ? PyObject_GetAttr(staged, name_context) : NULL;
    held[9] = held[8] ? PyObject_GetAttr(call, name_exception) : NULL;
    if (!held[9])
        goto done;
    start = PyLong_AsUnsignedLongLong(held[3]);
    end = PyLong_AsUnsignedLongLong(held[4]);
    version = PyLong_AsUnsignedLongLong(held[5]);
    if (PyErr_Occurred())
        goto done;
    if (!put_text_field(b, 1, held[0]) || !put_text_field(b, 2, held[1]) || !put_text_field(b, 3, held[2]) ||
        !put_fixed64_field(b, 4, start) || !put_fixed64_field(b, 5, end))
        goto done;
    if (version && !(put_varint(b, 6 << 3) && put_varint(b, version)))
        goto done;
    if (!put_text_field(b, 7, held[6]) || !put_text_field(b, 8, held[7]))
        goto done;
    if (!PyTuple_Check(held[8]) || PyTuple_GET_SIZE(held[8]) != 8 || !PyTuple_Check(held[9]) ||
        PyTuple_GET_SIZE(held[9]) != 2) {
        PyErr_SetString(PyExc_TypeError, "a staged call needs 8 context fields and an (type, message) exception");
        goto done;
    }
    for (int i = 0; i < 8; i++)
        if (!put_text_field(b, 9 + (uint32_t)i, PyTuple_GET_ITEM(held[8], i)))
            goto done;
    ok = put_text_field(b, 17, PyTuple_GET_ITEM(held[9], 0)) && put_text_field(b, 18, PyTuple_GET_ITEM(held[9], 1));
done:
    for (int i = 0; i < 10; i++)
        Py_XDECREF(held[i]);
    return ok;
}

/* Rows of an IncomingSpan each, length-prefixed, joined: what one insert sends. */
static PyObject *protobuf_rows(PyObject *module, PyObject *staged_calls)
{
    PyObject *sequence = PySequence_Fast(staged_calls, "protobuf_rows takes a sequence of staged calls");
    if (!sequence)
        return NULL;
    Buffer rows = {NULL, 0, 0}, decision = {NULL, 0, 0};
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(sequence); i++) {
        PyObject *staged = PySequence_Fast_GET_ITEM(sequence, i);
        PyObject *call = NULL, *record = NULL, *resource = NULL, *scope = NULL;
        PyObject *payload = NULL, *resource_payload = NULL, *scope_payload = NULL;
        const char *span_data, *resource_data, *scope_data;
        Py_ssize_t span_size, resource_size, scope_size;
        int ok = 0;
        decision.size = 0;
        call = PyObject_GetAttr(staged, name_call);
        record = call ? PyObject_GetAttr(call, name_record) : NULL;
        resource = record ? PyObject_GetAttr(record, name_resource) : NULL;
        scope = resource ? PyObject_GetAttr(record, name_scope) : NULL;
        if (scope && bytes_of(record, name_payload, &payload, &span_data, &span_size) &&
            bytes_of(resource, name_payload, &resource_payload, &resource_data, &resource_size) &&
            bytes_of(scope, name_payload, &scope_payload, &scope_data, &scope_size) &&
            put_decision(&decision, staged, call, record)) {
            Py_ssize_t size = 1 + varint_size((uint64_t)resource_size) + resource_size + 1 +
                              varint_size((uint64_t)scope_size) + scope_size + 1 + varint_size((uint64_t)span_size) +
                              span_size + 1 + varint_size((uint64_t)decision.size) + decision.size;
            ok = reserve(&rows, size + 10) && put_varint(&rows, (uint64_t)size) &&
                 put_bytes_field(&rows, 1, resource_data, resource_size) &&
                 put_bytes_field(&rows, 2, scope_data, scope_size) &&
                 put_bytes_field(&rows, 3, span_data, span_size) &&
                 put_bytes_field(&rows, 4, decision.data, decision.size);
        }
        Py_XDECREF(call);
        Py_XDECREF(record);
        Py_XDECREF(resource);
        Py_XDECREF(scope);
        Py_XDECREF(payload);
        Py_XDECREF(resource_payload);
        Py_XDECREF(scope_payload);
        if (!ok) {
            if (!PyErr_Occurred())
                PyErr_NoMemory();
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(rows.data ? rows.data : "", rows.size);
done:
    free(rows.data);
    free(decision.data);
    Py_DECREF(sequence);
    return result;
}

/* --- the direct rows of an insert, as one Native block ---------------------------- */
/*
 * ClickHouse reads a Native block (column after column) about three times
 * faster than the same rows in RowBinary, so the writer sends its direct rows
 * as one: each call's row as pass one wrote it (RowBinary, the first columns),
 * then its capability, operation, version and context from the writer. The
 * fields are read with the interpreter lock, the columns written without it.
 */

#define MAX_COLUMNS 64

enum { COLUMN_STRING, COLUMN_FIXED1, COLUMN_FIXED4, COLUMN_FIXED8, COLUMN_MAP };

typedef struct {
    int kind;
    Py_ssize_t sizes[3]; /* bytes of its data (a map: offsets), keys and values */
    char *at[3];         /* where they are written next, once measured */
    uint64_t entries;    /* a map's entries so far */
} Column;

static int column_kind(const char *type)
{
    static const struct {
        const char *type;
        int kind;
    } kinds[] = {
        {"String", COLUMN_STRING}, {"Map(String, String)", COLUMN_MAP}, {"UInt8", COLUMN_FIXED1},
        {"Int8", COLUMN_FIXED1}, {"Bool", COLUMN_FIXED1}, {"UInt32", COLUMN_FIXED4}, {"UInt64", COLUMN_FIXED8},
        {"Int64", COLUMN_FIXED8}, {"DateTime64(9, 'UTC')", COLUMN_FIXED8},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(type, kinds[i].type) == 0)
            return kinds[i].kind;
    return -1;
}

/* Measure (`write` 0) or write bytes into part `part` of a column. */
static void emit(Column *column, int part, const void *data, Py_ssize_t size, int write)
{
    if (write) {
        memcpy(column->at[part], data, (size_t)size);
        column->at[part] += size;
    } else {
        column->sizes[part] += size;
    }
}

/* One RowBinary String at *at (the same encoding in Native). */
static int take_string(const uint8_t **at, const uint8_t *end, Column *column, int part, int write)
{
    const uint8_t *start = *at, *data;
    Py_ssize_t size;
    if (!read_length(at, end, &data, &size))
        return 0;
    emit(column, part, start, *at - start, write);
    return 1;
}

static void emit_string(Column *column, const char *data, Py_ssize_t size, int write)
{
    uint8_t length[10];
    int n = 0;
    for (uint64_t value = (uint64_t)size; ; value >>= 7) {
        length[n++] = (uint8_t)(value & 0x7F) | (value >= 0x80 ? 0x80 : 0);
        if (value < 0x80)
            break;
    }
    emit(column, 0, length, n, write);
    emit(column, 0, data, size, write);
}

/* One value of a pass-one row into its column; 0 when the row is cut short. */
static int take_value(const uint8_t **at, const uint8_t *end, Column *column, int write)
{
    static const int widths[] = {[COLUMN_FIXED1] = 1, [COLUMN_FIXED4] = 4, [COLUMN_FIXED8] = 8};
    switch (column->kind) {
    case COLUMN_STRING:
        return take_string(at, end, column, 0, write);
    case COLUMN_MAP: {
        uint64_t count;
        uint8_t offset[8];
        if (!read_varint(at, end, &count))
            return 0;
        for (uint64_t i = 0; i < count; i++)
            if (!take_string(at, end, column, 1, write) || !take_string(at, end, column, 2, write))
                return 0;
        column->entries += count;
        for (int i = 0; i < 8; i++)
            offset[i] = (uint8_t)(column->entries >> (8 * i));
        emit(column, 0, offset, 8, write);
        return 1;
    }
    default: {
        int width = widths[column->kind];
        if (end - *at < width)
            return 0;
        emit(column, 0, *at, width, write);
        *at += width;
        return 1;
    }
    }
}

/* What native_block reads of one staged call: its row, and the UTF-8 of its
 * capability, operation and 8 context fields (owned by objects it holds). */
typedef struct {
    const uint8_t *row;
    Py_ssize_t row_size;
    const char *text[10];
    Py_ssize_t size[10];
    uint8_t version[4];
} DirectCall;

#define DIRECT_TEXTS 10

/* A call's fields into *out, its objects into held[0..3] (new references). */
static int read_direct_call(PyObject *staged, DirectCall *out, PyObject **held)
{
    PyObject *call = PyObject_GetAttr(staged, name_call);
    if (!call)
        return 0;
    held[0] = PyObject_GetAttr(call, name_row);
    held[1] = held[0] ? PyObject_GetAttr(call, name_capability) : NULL;
    held[2] = held[1] ? PyObject_GetAttr(call, name_operation) : NULL;
    held[3] = held[2] ? PyObject_GetAttr(staged, name_context) : NULL;
    PyObject *version = held[3] ? PyObject_GetAttr(staged, name_version) : NULL;
    Py_DECREF(call);
    if (!version)
        return 0;
    unsigned long number = PyLong_AsUnsignedLong(version);
    Py_DECREF(version);
    if (PyErr_Occurred() || number > 0xFFFFFFFFul) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_OverflowError, "a version is a UInt32");
        return 0;
    }
    if (!PyBytes_Check(held[0]) || !PyTuple_Check(held[3]) || PyTuple_GET_SIZE(held[3]) != 8) {
        PyErr_SetString(PyExc_TypeError, "a direct row needs the call's row bytes and 8 context fields");
        return 0;
    }
    out->row = (const uint8_t *)PyBytes_AS_STRING(held[0]);
    out->row_size = PyBytes_GET_SIZE(held[0]);
    for (int i = 0; i < 4; i++)
        out->version[i] = (uint8_t)(number >> (8 * i));
    for (int t = 0; t < DIRECT_TEXTS; t++) {
        PyObject *text = t == 0 ? held[1] : t == 1 ? held[2] : PyTuple_GET_ITEM(held[3], t - 2);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "an operations row needs str values");
            return 0;
        }
        if (!(out->text[t] = PyUnicode_AsUTF8AndSize(text, &out->size[t])))
            return 0;
    }
    return 1;
}

/* Measure (`write` 0), then write, the columns of the calls: no Python calls.
 * 0 for a row that does not fit the columns. */
static int take_columns(const DirectCall *calls, Py_ssize_t rows, Column *table, Py_ssize_t from_row, int write)
{
    for (Py_ssize_t c = 0; c < from_row; c++)
        table[c].entries = 0;
    for (Py_ssize_t i = 0; i < rows; i++) {
        const uint8_t *at = calls[i].row, *end = at + calls[i].row_size;
        for (Py_ssize_t c = 0; c < from_row; c++)
            if (!take_value(&at, end, &table[c], write))
                return 0;
        if (at != end)
            return 0;
        emit_string(&table[from_row], calls[i].text[0], calls[i].size[0], write);
        emit_string(&table[from_row + 1], calls[i].text[1], calls[i].size[1], write);
        emit(&table[from_row + 2], 0, calls[i].version, 4, write);
        for (int f = 0; f < 8; f++)
            emit_string(&table[from_row + 3 + f], calls[i].text[2 + f], calls[i].size[2 + f], write);
    }
    return 1;
}

static char *put_header_text(char *at, const char *text)
{
    size_t size = strlen(text);
    uint64_t value = size;
    do {
        *at++ = (char)((value & 0x7F) | (value >= 0x80 ? 0x80 : 0));
        value >>= 7;
    } while (value);
    memcpy(at, text, size);
    return at + size;
}

static PyObject *native_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "native_block(staged_calls, columns)");
        return NULL;
    }
    PyObject *staged = PySequence_Fast(args[0], "native_block takes a sequence of staged calls");
    PyObject *columns = staged ? PySequence_Fast(args[1], "columns are (name, type) pairs") : NULL;
    Column table[MAX_COLUMNS];
    const char *names[MAX_COLUMNS], *types[MAX_COLUMNS];
    Py_ssize_t count = columns ? PySequence_Fast_GET_SIZE(columns) : 0, from_row = count - 3 - 8;
    Py_ssize_t rows = staged ? PySequence_Fast_GET_SIZE(staged) : 0, read = 0;
    DirectCall *calls = NULL;
    PyObject **held = NULL;
    PyObject *result = NULL;
    memset(table, 0, sizeof table);
    if (!columns)
        goto done;
    if (count > MAX_COLUMNS || from_row < 0 || count > 127 || rows > 0x1FFFFF) {
        PyErr_SetString(PyExc_ValueError,
                        "a direct row has its row's columns, then capability, operation, version and 8 context fields");
        goto done;
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(columns, c), "ss", &names[c], &types[c]))
            goto done;
        if (strlen(names[c]) > 127) {
            PyErr_SetString(PyExc_ValueError, "a column name is at most 127 bytes here");
            goto done;
        }
        if ((table[c].kind = column_kind(types[c])) < 0) {
            PyErr_Format(PyExc_ValueError, "no Native encoding for column type %s", types[c]);
            goto done;
        }
    }
    calls = malloc(sizeof(DirectCall) * (size_t)(rows + 1));
    held = calloc((size_t)(4 * rows + 1), sizeof(PyObject *));
    if (!calls || !held) {
        PyErr_NoMemory();
        goto done;
    }
    for (; read < rows; read++)
        if (!read_direct_call(PySequence_Fast_GET_ITEM(staged, read), &calls[read], held + 4 * read)) {
            read++; /* its references are released below */
            goto done;
        }
    int fits;
    Py_BEGIN_ALLOW_THREADS
    fits = take_columns(calls, rows, table, from_row, 0);
    Py_END_ALLOW_THREADS
    if (!fits) {
        PyErr_SetString(PyExc_ValueError, "a call's row does not match the direct columns");
        goto done;
    }
    Py_ssize_t total = 1 + varint_size((uint64_t)rows);
    for (Py_ssize_t c = 0; c < count; c++)
        total += 2 + (Py_ssize_t)strlen(names[c]) + (Py_ssize_t)strlen(types[c]) + table[c].sizes[0] +
                 table[c].sizes[1] + table[c].sizes[2]; /* names and types are short: one-byte lengths */
    if (!(result = PyBytes_FromStringAndSize(NULL, total)))
        goto done;
    char *at = PyBytes_AS_STRING(result);
    *at++ = (char)count;
    for (uint64_t value = (uint64_t)rows; ; value >>= 7) {
        *at++ = (char)((value & 0x7F) | (value >= 0x80 ? 0x80 : 0));
        if (value < 0x80)
            break;
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        at = put_header_text(put_header_text(at, names[c]), types[c]);
        for (int part = 0; part < 3; part++) {
            table[c].at[part] = at;
            at += table[c].sizes[part];
        }
    }
    Py_BEGIN_ALLOW_THREADS
    take_columns(calls, rows, table, from_row, 1);
    Py_END_ALLOW_THREADS
done:
    for (Py_ssize_t i = 0; held && i < 4 * read; i++)
        Py_XDECREF(held[i]);
    free(held);
    free(calls);
    Py_XDECREF(staged);
    Py_XDECREF(columns);
    return result;
}

static PyMethodDef module_methods[] = {
    {"protobuf_rows", protobuf_rows, METH_O,
     "protobuf_rows(staged_calls) -> bytes: their IncomingSpan rows, length-prefixed (clickhouse/staging.py)"},
    {"native_block", (PyCFunction)(void (*)(void))native_block, METH_FASTCALL,
     "native_block(staged_calls, columns) -> bytes: their operations rows as one Native block (clickhouse/staging.py)"},
    {NULL, NULL, 0, NULL},
};

static int intern_names(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&name_call, "call"}, {&name_record, "record"}, {&name_version, "version"}, {&name_context, "context"},
        {&name_capability, "capability"}, {&name_operation, "operation"}, {&name_exception, "exception"},
        {&name_trace_id, "trace_id"}, {&name_span_id, "span_id"}, {&name_parent_span_id, "parent_span_id"},
        {&name_start_ns, "start_ns"}, {&name_end_ns, "end_ns"}, {&name_payload, "payload"},
        {&name_resource, "resource"}, {&name_scope, "scope"}, {&name_row, "row"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!(*names[i].slot = PyUnicode_InternFromString(names[i].text)))
            return -1;
    return 0;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spanmap", "Compiled OTLP decode and map, and staged rows.", -1, module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__spanmap(void)
{
    if (PyType_Ready(&MapperType) < 0 || intern_names() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Mapper", (PyObject *)&MapperType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
