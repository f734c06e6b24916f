/*
 * ingest._decide: the writer's per-call decisions for a group of exports,
 * without an interpreter step per call (ingest/fastdecide.py says why).
 *
 * gather() is ingest.pipeline._gather and split() is ingest.context._split,
 * step for step; the Python functions are the reference, and
 * tests/unit/test_decide.py holds these to them. Both work on the pipeline's
 * own objects (Candidate, SpanFact, StoredState...) through their attributes,
 * so they assume nothing of how those are built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *name_facts, *name_candidates, *name_key, *name_call, *name_record, *name_start_ns,
    *name_trace_id, *name_parent_span_id, *name_has_tokens, *name_own_context, *name_resource_context,
    *name_context, *name_live, *name_max_version, *name_get, *empty_text, *one;

/* The (trace id, span id) key of a candidate, checked: a borrowed reference to each part. */
static int key_parts(PyObject *key, PyObject **trace, PyObject **span)
{
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2) {
        PyErr_SetString(PyExc_TypeError, "a call's key is a (trace id, span id) tuple");
        return 0;
    }
    *trace = PyTuple_GET_ITEM(key, 0);
    *span = PyTuple_GET_ITEM(key, 1);
    return 1;
}

/* `key in container`, for a set, a dict or anything else: 1, 0, or -1 with an error. */
static int contains(PyObject *container, PyObject *key)
{
    if (PyAnySet_Check(container))
        return PySet_Contains(container, key);
    if (PyDict_Check(container))
        return PyDict_Contains(container, key);
    return PySequence_Contains(container, key);
}

/* gather(exports, unwritten, lookup_keys_type)
 *   -> (candidates, facts, keys, lookup_keys, trace_ids), as ingest.pipeline._gather. */
static PyObject *gather(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gather(exports, unwritten, lookup_keys_type)");
        return NULL;
    }
    PyObject *unwritten = args[1], *result = NULL, *exports = NULL;
    PyObject *candidates = PyList_New(0), *facts = PyList_New(0), *seen = PySet_New(NULL);
    PyObject *kept = PySet_New(NULL), *trace_ids = PySet_New(NULL), *keys = NULL;
    PyObject *starts = PyList_New(0), *traces = PyList_New(0), *spans = PyList_New(0);
    int check_unwritten = PyObject_IsTrue(unwritten);
    if (!candidates || !facts || !seen || !kept || !trace_ids || !starts || !traces || !spans || check_unwritten < 0)
        goto done;
    exports = PySequence_Fast(args[0], "gather takes a sequence of mapped exports");
    if (!exports)
        goto done;
    for (Py_ssize_t e = 0; e < PySequence_Fast_GET_SIZE(exports); e++) {
        PyObject *export = PySequence_Fast_GET_ITEM(exports, e);
        PyObject *these = PyObject_GetAttr(export, name_facts);
        PyObject *fast = these ? PySequence_Fast(these, "an export's facts are a sequence") : NULL;
        Py_XDECREF(these);
        if (!fast)
            goto done;
        for (Py_ssize_t f = 0; f < PySequence_Fast_GET_SIZE(fast); f++) {
            PyObject *fact = PySequence_Fast_GET_ITEM(fast, f);
            PyObject *trace = PyObject_GetAttr(fact, name_trace_id);
            int failed = !trace || PyList_Append(facts, fact) < 0 || PySet_Add(trace_ids, trace) < 0;
            Py_XDECREF(trace);
            if (failed) {
                Py_DECREF(fast);
                goto done;
            }
        }
        Py_DECREF(fast);
        these = PyObject_GetAttr(export, name_candidates);
        fast = these ? PySequence_Fast(these, "an export's candidates are a sequence") : NULL;
        Py_XDECREF(these);
        if (!fast)
            goto done;
        for (Py_ssize_t c = 0; c < PySequence_Fast_GET_SIZE(fast); c++) {
            PyObject *candidate = PySequence_Fast_GET_ITEM(fast, c);
            PyObject *key = PyObject_GetAttr(candidate, name_key), *trace, *span, *call = NULL, *record = NULL;
            PyObject *start = NULL;
            int ok = 0, known;
            if (!key || !key_parts(key, &trace, &span))
                goto next;
            if ((known = PySet_Contains(seen, key)) != 0) {
                ok = known > 0;  /* the same call twice in the group: once is enough */
                goto next;
            }
            if (PySet_Add(seen, key) < 0)
                goto next;
            if (check_unwritten && (known = contains(unwritten, key)) != 0) {
                ok = known > 0;  /* in the group being written */
                goto next;
            }
            call = PyObject_GetAttr(candidate, name_call);
            record = call ? PyObject_GetAttr(call, name_record) : NULL;
            start = record ? PyObject_GetAttr(record, name_start_ns) : NULL;
            ok = start && PyList_Append(candidates, candidate) == 0 && PySet_Add(kept, key) == 0 &&
                 PyList_Append(starts, start) == 0 && PyList_Append(traces, trace) == 0 &&
                 PyList_Append(spans, span) == 0 && PySet_Add(trace_ids, trace) == 0;
        next:
            Py_XDECREF(key);
            Py_XDECREF(call);
            Py_XDECREF(record);
            Py_XDECREF(start);
            if (!ok) {
                Py_DECREF(fast);
                goto done;
            }
        }
        Py_DECREF(fast);
    }
    PyObject *lookup_keys = PyObject_CallFunctionObjArgs(args[2], starts, traces, spans, NULL);
    if (lookup_keys && (keys = PyFrozenSet_New(kept)))
        result = PyTuple_Pack(5, candidates, facts, keys, lookup_keys, trace_ids);
    Py_XDECREF(lookup_keys);
done:
    Py_XDECREF(exports);
    Py_XDECREF(candidates);
    Py_XDECREF(facts);
    Py_XDECREF(seen);
    Py_XDECREF(kept);
    Py_XDECREF(keys);
    Py_XDECREF(trace_ids);
    Py_XDECREF(starts);
    Py_XDECREF(traces);
    Py_XDECREF(spans);
    return result;
}

/* `mapping[key]` when `key in mapping`: a new reference, NULL with no error when
 * absent, NULL with an error on failure. */
static PyObject *item_if_in(PyObject *mapping, PyObject *key)
{
    if (PyDict_Check(mapping)) {
        PyObject *value = PyDict_GetItemWithError(mapping, key);
        Py_XINCREF(value);
        return value;
    }
    int in = PySequence_Contains(mapping, key);
    return in > 0 ? PyObject_GetItem(mapping, key) : NULL;
}

/* ingest.mapping.resolve_context(keys, [own] if own else [], resource): a new tuple. */
static PyObject *resolve(PyObject *fields, PyObject *own, int has_own, PyObject *resource)
{
    Py_ssize_t count = PyTuple_GET_SIZE(fields);
    PyObject *values = PyTuple_New(count);
    if (!values)
        return NULL;
    for (Py_ssize_t f = 0; f < count; f++) {
        PyObject *keys = PyTuple_GET_ITEM(PyTuple_GET_ITEM(fields, f), 1);
        PyObject *found = Py_NewRef(empty_text);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(keys); k++) {
            PyObject *key = PyTuple_GET_ITEM(keys, k), *value = NULL;
            if (has_own && (value = item_if_in(own, key)) != NULL) {
                Py_SETREF(found, value);  /* the span's own value, even an empty one */
            } else if (PyErr_Occurred()) {
                goto failed;
            } else {
                if (PyDict_CheckExact(resource)) {
                    value = PyDict_GetItemWithError(resource, key);
                    value = value ? Py_NewRef(value) : PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
                } else {
                    value = PyObject_CallMethodOneArg(resource, name_get, key);
                }
                if (!value)
                    goto failed;
                int empty = value == Py_None;
                if (!empty) {
                    empty = PyUnicode_Check(value) ? PyUnicode_GET_LENGTH(value) == 0
                                                   : !PyObject_RichCompareBool(value, empty_text, Py_NE);
                    if (PyErr_Occurred()) {
                        Py_DECREF(value);
                        goto failed;
                    }
                }
                if (!empty) {
                    if (!PyUnicode_Check(value)) {
                        Py_SETREF(value, PyObject_Str(value));
                        if (!value)
                            goto failed;
                    }
                    Py_SETREF(found, value);
                } else {
                    Py_DECREF(value);
                }
            }
            int truth = PyObject_IsTrue(found);
            if (truth < 0)
                goto failed;
            if (truth)
                break;
        }
        PyTuple_SET_ITEM(values, f, found);
        continue;
    failed:
        Py_DECREF(found);
        Py_DECREF(values);
        return NULL;
    }
    return values;
}

/* What split keeps of one candidate (new references, but `candidate`). */
typedef struct {
    PyObject *candidate, *key, *trace, *span, *call, *record, *parent;
    Py_ssize_t group;  /* index of its trace among the group's traces */
} Call;

/* What split keeps of one trace with calls in the group. */
typedef struct {
    PyObject *trace;   /* borrowed from its first call */
    Py_ssize_t calls, facts, first;
    int direct;
    PyObject *remembered;  /* list of DirectCall tuples, or NULL */
} Trace;

typedef struct {
    Call *calls;
    Py_ssize_t n_calls;
    Trace *traces;
    Py_ssize_t n_traces;
    PyObject *trace_index;  /* trace id -> index into traces */
    Py_ssize_t *next_call;  /* the next call of the same trace, or -1 */
    Py_ssize_t n_facts;
    PyObject **fact_trace;  /* each fact's trace id (new references) */
    Py_ssize_t *fact_group; /* and the index of its trace among those with calls, or -1 */
} Group;

static void free_group(Group *g)
{
    for (Py_ssize_t i = 0; i < g->n_calls; i++) {
        Call *c = &g->calls[i];
        Py_XDECREF(c->key);
        Py_XDECREF(c->call);
        Py_XDECREF(c->record);
        Py_XDECREF(c->parent);
    }
    for (Py_ssize_t t = 0; t < g->n_traces; t++)
        Py_XDECREF(g->traces[t].remembered);
    for (Py_ssize_t f = 0; f < g->n_facts; f++)
        Py_XDECREF(g->fact_trace[f]);
    PyMem_Free(g->fact_trace);
    PyMem_Free(g->fact_group);
    PyMem_Free(g->calls);
    PyMem_Free(g->traces);
    PyMem_Free(g->next_call);
    Py_XDECREF(g->trace_index);
}

/* Index of a trace among the group's, or -1 (also -2 with an error). */
static Py_ssize_t trace_of(const Group *g, PyObject *trace)
{
    PyObject *index = PyDict_GetItemWithError(g->trace_index, trace);
    if (!index)
        return PyErr_Occurred() ? -2 : -1;
    return PyLong_AsSsize_t(index);
}

/* ContextResolver.knows: the trace is in its memory or among its direct calls. */
static int knows(PyObject *memory, PyObject *direct_calls, PyObject *trace)
{
    int in = PyDict_Contains(memory, trace);
    return in != 0 ? in : PyDict_Contains(direct_calls, trace);
}

/* The group's calls, and its traces in the order of their first call. */
static int read_calls(Group *g, PyObject *candidates)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(candidates);
    g->calls = PyMem_Calloc(n ? n : 1, sizeof(Call));
    g->traces = PyMem_Calloc(n ? n : 1, sizeof(Trace));
    g->next_call = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    g->trace_index = PyDict_New();
    if (!g->calls || !g->traces || !g->next_call || !g->trace_index) {
        PyErr_NoMemory();
        return 0;
    }
    Py_ssize_t *last = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    if (!last) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Call *c = &g->calls[i];
        g->n_calls = i + 1;
        c->candidate = PySequence_Fast_GET_ITEM(candidates, i);
        c->key = PyObject_GetAttr(c->candidate, name_key);
        if (!c->key || !key_parts(c->key, &c->trace, &c->span))
            goto failed;
        c->call = PyObject_GetAttr(c->candidate, name_call);
        c->record = c->call ? PyObject_GetAttr(c->call, name_record) : NULL;
        c->parent = c->record ? PyObject_GetAttr(c->record, name_parent_span_id) : NULL;
        if (!c->parent)
            goto failed;
        if (!PyUnicode_Check(c->parent)) {
            PyErr_SetString(PyExc_TypeError, "a parent span id is a str");
            goto failed;
        }
        Py_ssize_t t = trace_of(g, c->trace);
        if (t == -2)
            goto failed;
        g->next_call[i] = -1;
        if (t < 0) {
            t = g->n_traces++;
            PyObject *index = PyLong_FromSsize_t(t);
            int failed = !index || PyDict_SetItem(g->trace_index, c->trace, index) < 0;
            Py_XDECREF(index);
            if (failed)
                goto failed;
            g->traces[t].trace = c->trace;
            g->traces[t].first = i;
        } else {
            g->next_call[last[t]] = i;
        }
        last[t] = i;
        g->traces[t].calls++;
        c->group = t;
    }
    PyMem_Free(last);
    return 1;
failed:
    PyMem_Free(last);
    return 0;
}

/* Whether a trace's calls stand side by side: each has a parent, none is
 * another's, and none was stored before. 1, 0, or -1 with an error. */
static int side_by_side(const Group *g, const Trace *trace, PyObject *stored)
{
    PyObject *span_ids = NULL;
    if (trace->calls > 8) {  /* a set beats comparing every pair */
        if (!(span_ids = PySet_New(NULL)))
            return -1;
        for (Py_ssize_t i = trace->first; i >= 0; i = g->next_call[i])
            if (PySet_Add(span_ids, g->calls[i].span) < 0) {
                Py_DECREF(span_ids);
                return -1;
            }
    }
    int answer = 1;
    for (Py_ssize_t i = trace->first; i >= 0 && answer == 1; i = g->next_call[i]) {
        const Call *c = &g->calls[i];
        if (PyUnicode_GET_LENGTH(c->parent) == 0) {
            answer = 0;
            break;
        }
        if (span_ids) {
            answer = PySet_Contains(span_ids, c->parent);
            answer = answer < 0 ? -1 : !answer;
        } else {
            for (Py_ssize_t j = trace->first; j >= 0 && answer == 1; j = g->next_call[j]) {
                int same = PyObject_RichCompareBool(c->parent, g->calls[j].span, Py_EQ);
                answer = same < 0 ? -1 : !same;
            }
        }
        if (answer == 1) {
            int in = PyDict_Contains(stored, c->key);
            answer = in < 0 ? -1 : !in;
        }
    }
    Py_XDECREF(span_ids);
    return answer;
}

/* Mark the traces whose calls are stored as they are (ingest.context._direct_traces). */
static int find_direct(Group *g, PyObject *facts, PyObject *stored, PyObject *memory, PyObject *direct_calls,
                       PyObject *linked)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(facts);
    g->fact_trace = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    g->fact_group = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    if (!g->fact_trace || !g->fact_group) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t f = 0; f < n; f++) {
        g->n_facts = f + 1;
        PyObject *trace = g->fact_trace[f] = PyObject_GetAttr(PySequence_Fast_GET_ITEM(facts, f), name_trace_id);
        Py_ssize_t t = trace ? trace_of(g, trace) : -2;
        if (t == -2)
            return 0;
        g->fact_group[f] = t;
        if (t >= 0)
            g->traces[t].facts++;
    }
    PyObject *beside = NULL;  /* traces side by side, before the links are asked */
    for (Py_ssize_t t = 0; t < g->n_traces; t++) {
        Trace *trace = &g->traces[t];
        if (trace->facts != trace->calls)
            continue;
        int known = knows(memory, direct_calls, trace->trace);
        if (known < 0)
            goto failed;
        if (known)
            continue;
        if (trace->calls == 1 && PyUnicode_GET_LENGTH(g->calls[trace->first].parent) == 0) {
            trace->direct = 1;  /* a root call alone in its trace */
            continue;
        }
        int answer = side_by_side(g, trace, stored);
        if (answer < 0)
            goto failed;
        if (answer) {
            if (!beside && !(beside = PySet_New(NULL)))
                goto failed;
            if (PySet_Add(beside, trace->trace) < 0)
                goto failed;
            trace->direct = 2;
        }
    }
    if (beside) {
        PyObject *joined = PyObject_CallOneArg(linked, beside);
        if (!joined)
            goto failed;
        for (Py_ssize_t t = 0; t < g->n_traces; t++) {
            if (g->traces[t].direct != 2)
                continue;
            int in = contains(joined, g->traces[t].trace);
            if (in < 0) {
                Py_DECREF(joined);
                goto failed;
            }
            g->traces[t].direct = !in;
        }
        Py_DECREF(joined);
        Py_DECREF(beside);
    }
    return 1;
failed:
    Py_XDECREF(beside);
    return 0;
}

/* A direct call's StagedCall, and its DirectCall entry added to its trace's list;
 * 0 with an error. Nothing when it was stored before. */
static int stage_direct(Group *g, Call *c, PyObject *stored, PyObject *fields, PyObject *empty_context,
                        PyObject *staged_type, PyObject *direct)
{
    PyObject *state = PyDict_GetItemWithError(stored, c->key), *max_version = NULL;
    if (!state && PyErr_Occurred())
        return 0;
    if (state) {
        PyObject *live = PyObject_GetAttr(state, name_live);
        if (!live)
            return 0;
        Py_DECREF(live);
        if (live != Py_None)
            return 1;  /* already stored: a retry */
        if (!(max_version = PyObject_GetAttr(state, name_max_version)))
            return 0;
    }
    PyObject *own = PyObject_GetAttr(c->candidate, name_own_context);
    PyObject *resource = own ? PyObject_GetAttr(c->candidate, name_resource_context) : NULL;
    PyObject *version = NULL, *context = NULL, *staged = NULL, *start = NULL, *tokens = NULL, *entry = NULL;
    int ok = 0, has_own, has_resource;
    if (!resource || (has_own = PyObject_IsTrue(own)) < 0 || (has_resource = PyObject_IsTrue(resource)) < 0)
        goto done;
    version = max_version ? PyNumber_Add(max_version, one) : PyLong_FromLong(1);
    context = has_own || has_resource ? resolve(fields, own, has_own, resource) : Py_NewRef(empty_context);
    if (!version || !context)
        goto done;
    PyObject *staged_args[] = {c->call, version, context};
    staged = PyObject_Vectorcall(staged_type, staged_args, 3, NULL);
    start = staged ? PyObject_GetAttr(c->record, name_start_ns) : NULL;
    tokens = start ? PyObject_GetAttr(c->call, name_has_tokens) : NULL;
    if (!tokens || PyList_Append(direct, staged) < 0)
        goto done;
    entry = PyTuple_Pack(8, c->span, start, c->parent, tokens, own, resource, version, context);
    Trace *trace = &g->traces[c->group];
    if (!entry || (!trace->remembered && !(trace->remembered = PyList_New(0))))
        goto done;
    ok = PyList_Append(trace->remembered, entry) == 0;
done:
    Py_XDECREF(max_version);
    Py_XDECREF(own);
    Py_XDECREF(resource);
    Py_XDECREF(version);
    Py_XDECREF(context);
    Py_XDECREF(staged);
    Py_XDECREF(start);
    Py_XDECREF(tokens);
    Py_XDECREF(entry);
    return ok;
}

/* The facts `plan` needs, and the plain ones (links only), as ingest.context._split sorts them. */
static int sort_facts(const Group *g, PyObject *facts, PyObject *memory, PyObject *direct_calls,
                      PyObject *trace_facts, PyObject *plain)
{
    /* Per fact, from find_direct: no call of its trace here (-1), a tracked trace (0), a direct one (1). */
    signed char *where = PyMem_Calloc(g->n_facts ? g->n_facts : 1, 1);
    PyObject *with_context = PySet_New(NULL);  /* traces of context spans, not direct */
    int ok = 0;
    if (!where || !with_context) {
        if (!where)
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t f = 0; f < g->n_facts; f++) {
        Py_ssize_t t = g->fact_group[f];
        where[f] = t < 0 ? -1 : g->traces[t].direct ? 1 : 0;
        if (where[f] == 1)
            continue;
        PyObject *context = PyObject_GetAttr(PySequence_Fast_GET_ITEM(facts, f), name_context);
        int tagged = context ? PyObject_IsTrue(context) : -1;
        Py_XDECREF(context);
        if (tagged < 0 || (tagged && PySet_Add(with_context, g->fact_trace[f]) < 0))
            goto done;
    }
    for (Py_ssize_t f = 0; f < g->n_facts; f++) {
        PyObject *fact = PySequence_Fast_GET_ITEM(facts, f), *trace = g->fact_trace[f];
        int needed = where[f] == 0;
        if (!needed && (needed = PySet_Contains(with_context, trace)) == 0)
            needed = knows(memory, direct_calls, trace);
        if (needed < 0)
            goto done;
        if (needed ? PyList_Append(trace_facts, fact) < 0 : where[f] != 1 && PyList_Append(plain, fact) < 0)
            goto done;
    }
    ok = 1;
done:
    PyMem_Free(where);
    Py_XDECREF(with_context);
    return ok;
}

/* split(candidates, facts, stored, memory, direct_calls, linked, fields, empty_context, staged_type)
 *   -> (direct, remembered, tracked, trace_facts, plain), as ingest.context._split. */
static PyObject *split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "split(candidates, facts, stored, memory, direct_calls, linked, fields, empty_context, staged_type)");
        return NULL;
    }
    PyObject *stored = args[2], *memory = args[3], *direct_calls = args[4], *linked = args[5], *fields = args[6];
    PyObject *empty_context = args[7], *staged_type = args[8];
    if (!PyDict_Check(stored) || !PyDict_Check(memory) || !PyDict_Check(direct_calls) || !PyTuple_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "split needs dicts of stored states and memory, and a tuple of fields");
        return NULL;
    }
    for (Py_ssize_t f = 0; f < PyTuple_GET_SIZE(fields); f++) {
        PyObject *field = PyTuple_GET_ITEM(fields, f);
        if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(field, 1))) {
            PyErr_SetString(PyExc_TypeError, "each context field is a (name, keys) pair of a tuple of keys");
            return NULL;
        }
    }
    Group g = {0};
    PyObject *result = NULL, *remembered = NULL;
    PyObject *candidates = PySequence_Fast(args[0], "split takes a sequence of candidates");
    PyObject *facts = candidates ? PySequence_Fast(args[1], "split takes a sequence of span facts") : NULL;
    PyObject *direct = PyList_New(0), *tracked = PyList_New(0), *trace_facts = PyList_New(0), *plain = PyList_New(0);
    if (!facts || !direct || !tracked || !trace_facts || !plain)
        goto done;
    if (!read_calls(&g, candidates) || !find_direct(&g, facts, stored, memory, direct_calls, linked))
        goto done;
    for (Py_ssize_t i = 0; i < g.n_calls; i++) {
        Call *c = &g.calls[i];
        if (!g.traces[c->group].direct) {
            if (PyList_Append(tracked, c->candidate) < 0)
                goto done;
        } else if (!stage_direct(&g, c, stored, fields, empty_context, staged_type, direct)) {
            goto done;
        }
    }
    if (!sort_facts(&g, facts, memory, direct_calls, trace_facts, plain) || !(remembered = PyDict_New()))
        goto done;
    for (Py_ssize_t t = 0; t < g.n_traces; t++) {
        Trace *trace = &g.traces[t];
        if (!trace->remembered)
            continue;
        PyObject *entries = PyList_AsTuple(trace->remembered);
        int failed = !entries || PyDict_SetItem(remembered, trace->trace, entries) < 0;
        Py_XDECREF(entries);
        if (failed)
            goto done;
    }
    result = PyTuple_Pack(5, direct, remembered, tracked, trace_facts, plain);
done:
    free_group(&g);
    Py_XDECREF(candidates);
    Py_XDECREF(facts);
    Py_XDECREF(direct);
    Py_XDECREF(remembered);
    Py_XDECREF(tracked);
    Py_XDECREF(trace_facts);
    Py_XDECREF(plain);
    return result;
}

static PyMethodDef module_methods[] = {
    {"gather", (PyCFunction)(void (*)(void))gather, METH_FASTCALL,
     "gather(exports, unwritten, lookup_keys_type) -> (candidates, facts, keys, lookup_keys, trace_ids)"},
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(candidates, facts, stored, memory, direct_calls, linked, fields, empty_context, staged_type)"
     " -> (direct, remembered, tracked, trace_facts, plain)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decide", "The writer's per-call decisions, compiled.", -1,
                                    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__decide(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&name_facts, "facts"}, {&name_candidates, "candidates"}, {&name_key, "key"}, {&name_call, "call"},
        {&name_record, "record"}, {&name_start_ns, "start_ns"}, {&name_trace_id, "trace_id"},
        {&name_parent_span_id, "parent_span_id"}, {&name_has_tokens, "has_tokens"},
        {&name_own_context, "own_context"}, {&name_resource_context, "resource_context"}, {&name_context, "context"},
        {&name_live, "live"}, {&name_max_version, "max_version"}, {&name_get, "get"}, {&empty_text, ""},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!(*names[i].slot = PyUnicode_InternFromString(names[i].text)))
            return NULL;
    if (!(one = PyLong_FromLong(1)))
        return NULL;
    return PyModule_Create(&module);
}
