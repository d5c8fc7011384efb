# Out-of-process asyncio task walker (verification aid for asyncio-facts.md).
# Reads target memory ONLY via process_vm_readv. Usage: python3 reader.py PID
import ctypes, ctypes.util, os, re, struct, subprocess, sys

PID = int(sys.argv[1])
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(iovec), ctypes.c_ulong,
                                  ctypes.POINTER(iovec), ctypes.c_ulong, ctypes.c_ulong]
libc.process_vm_readv.restype = ctypes.c_ssize_t


def rd(addr, n):
    buf = ctypes.create_string_buffer(n)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), n)
    remote = iovec(addr, n)
    r = libc.process_vm_readv(PID, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if r != n:
        raise OSError(ctypes.get_errno(), "process_vm_readv 0x%x/%d -> %d" % (addr, n, r))
    return buf.raw


def p64(a): return struct.unpack("<Q", rd(a, 8))[0]
def i64(a): return struct.unpack("<q", rd(a, 8))[0]
def i32(a): return struct.unpack("<i", rd(a, 4))[0]
def u32(a): return struct.unpack("<I", rd(a, 4))[0]
def i8(a): return struct.unpack("<b", rd(a, 1))[0]
def u8(a): return rd(a, 1)[0]
def u16(a): return struct.unpack("<H", rd(a, 2))[0]


def cstr(a, n=200):
    s = rd(a, n)
    return s.split(b"\0", 1)[0].decode()


# ---------------------------------------------------------------- locate images
maps = open("/proc/%d/maps" % PID).read().splitlines()


def image(pattern):
    for line in maps:
        parts = line.split()
        if len(parts) >= 6 and re.search(pattern, parts[5]) and int(parts[2], 16) == 0:
            return int(parts[0].split("-")[0], 16), parts[5]
    return None, None


def elf_syms(path, names, table):
    out = {}
    txt = subprocess.run(["readelf", "-Ws", path], capture_output=True, text=True).stdout
    cur = None
    for line in txt.splitlines():
        m = re.match(r"Symbol table '(\S+)'", line)
        if m:
            cur = m.group(1)
            continue
        f = line.split()
        if cur == table and len(f) >= 8 and f[7] in names and f[6] != "UND":
            out[f[7]] = int(f[1], 16)
    return out


lp_base, lp_path = image(r"libpython3\.\d+\.so")
ver = re.search(r"libpython(3\.\d+)", lp_path).group(1)
print("target python", ver, "libpython", lp_path, "base 0x%x" % lp_base)
dsym = elf_syms(lp_path, {"_PyRuntime", "_PySet_Dummy", "PyCoro_Type", "PyGen_Type",
                          "_PyWeakref_RefType", "_Py_NoneStruct", "PyCFunction_Type",
                          "PyMethod_Type", "PyLong_Type", "PyUnicode_Type"}, ".dynsym")
SYM = {k: lp_base + v for k, v in dsym.items()}

V = {  # per-version offsets, all from gdb `ptype /o` on the pyenv builds
    "3.8":  dict(rt_interp=32, interp_modules=56, hckeys=872, ascii=48, compact=72,
                 t_waiter=104, t_coro=112, t_name=120, f_state=72,
                 cr_qual=56, cr_frame=16, f_code=32, f_lasti=104, f_stacktop=72, co_code=48, co_name=112),
    "3.9":  dict(rt_interp=32, interp_modules=856, hckeys=864, ascii=48, compact=72,
                 t_waiter=144, t_coro=152, t_name=160, f_state=80,
                 cr_qual=56, cr_frame=16, f_code=32, f_lasti=104, f_stacktop=72, co_code=48, co_name=112),
    "3.10": dict(rt_interp=32, interp_modules=856, hckeys=872, ascii=48, compact=72,
                 t_waiter=152, t_coro=160, t_name=168, f_state=88,
                 cr_qual=48, cr_frame=16, f_code=32, f_lasti=96, f_valuestack=64, f_stackdepth=80,
                 co_code=48, co_name=112),
    "3.11": dict(rt_interp=40, interp_modules=888, hckeys=872, ascii=48, compact=72,
                 t_waiter=128, t_coro=136, t_name=144, f_state=88,
                 cr_qual=40, cr_fstate=75, cr_iframe=80, if_code=32, if_instr=56, if_stacktop=64,
                 if_localsplus=72, co_name=120, co_qualname=128),
    "3.12": dict(rt_interp=40, interp_modules=944, hckeys=880, ascii=40, compact=56,
                 t_waiter=128, t_coro=136, t_name=144, f_state=88,
                 cr_qual=32, cr_fstate=67, cr_iframe=72, if_code=0, if_instr=56, if_stacktop=64,
                 if_localsplus=72, co_name=120, co_qualname=128),
    "3.13": dict(rt_interp=632, interp_modules=7656, hckeys=880, ascii=40, compact=56,
                 t_waiter=112, t_coro=120, t_name=128, f_state=96,
                 cr_qual=32, cr_fstate=67, cr_iframe=72, if_code=0, if_instr=56, if_stacktop=64,
                 if_localsplus=72, co_name=120, co_qualname=128),
}[ver]
MINOR = int(ver.split(".")[1])


def tp(o): return p64(o + 8)
def tpname(o): return cstr(p64(tp(o) + 24))


def pystr(o):
    if tpname(o) != "str":
        return None
    n = i64(o + 16)
    st = u32(o + 32)
    kind, compact, ascii_ = (st >> 2) & 7, (st >> 5) & 1, (st >> 6) & 1
    if compact and ascii_:
        return rd(o + V["ascii"], n).decode("ascii")
    if compact:
        raw = rd(o + V["compact"], n * kind)
        return raw.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])
    return "<non-compact str>"


def pyint(o):
    if MINOR >= 12:
        tag = p64(o + 16)
        nd, sign = tag >> 3, 1 - (tag & 3)
    else:
        sz = i64(o + 16)
        nd, sign = abs(sz), (1 if sz >= 0 else -1)
    v = 0
    for i in range(nd):
        v |= u32(o + 24 + 4 * i) << (30 * i)
    return sign * v


def dict_entries(keys):
    """Yield (index, key, value_in_entry) for a PyDictKeysObject."""
    if MINOR <= 10:
        size, nent = i64(keys + 8), i64(keys + 32)
        iw = 1 if size <= 0xff else 2 if size <= 0xffff else 4 if size <= 0xffffffff else 8
        ent, esz, kofs, vofs = keys + 40 + size * iw, 24, 8, 16
    else:
        l2idx, kind, nent = u8(keys + 9), u8(keys + 10), i64(keys + 24)
        ent = keys + 32 + (1 << l2idx)
        esz, kofs, vofs = (24, 8, 16) if kind == 0 else (16, 0, 8)
    for i in range(nent):
        k = p64(ent + i * esz + kofs)
        if k:
            yield i, k, p64(ent + i * esz + vofs)


def dict_get(d, name, values=None, keys=None):
    """Lookup str key in a dict object (d) or in (split keys, values array)."""
    if d:
        keys, mv = p64(d + 32), p64(d + 40)
        if mv:
            values = mv + (8 if MINOR >= 13 else 0)   # 3.13 PyDictValues has 8-byte header
    for i, k, v in dict_entries(keys):
        if pystr(k) == name:
            return p64(values + 8 * i) if values else v
    return None


def getattr_inst(o, name):
    """Instance attribute of a plain Python-class instance (e.g. WeakSet.data)."""
    t = tp(o)
    if MINOR <= 10:
        print("   [attr %s via tp_dictoffset=%d dict]" % (name, i64(t + 288)))
        return dict_get(p64(o + i64(t + 288)), name)                # tp_dictoffset
    hk = p64(t + V["hckeys"])
    if MINOR == 11:
        d = p64(o - 24)
        print("   [attr %s via %s]" % (name, "managed dict obj-24" if d else "values obj-32 + ht_cached_keys"))
        return dict_get(d, name) if d else dict_get(0, name, p64(o - 32), hk)
    if MINOR == 12:
        dv = p64(o - 24)
        print("   [attr %s via %s]" % (name, "values (dv+1) + ht_cached_keys" if dv & 1 else "dict"))
        return dict_get(0, name, dv + 1, hk) if dv & 1 else dict_get(dv, name)  # 3.12 stores values-1
    d = p64(o - 24)                                                     # 3.13
    print("   [attr %s via %s]" % (name, "managed dict obj-24" if d else "inline values obj+tp_basicsize"))
    if d:
        return dict_get(d, name)
    vals = o + i64(t + 32)                                              # inline values at tp_basicsize
    assert u8(vals + 3), "inline values not valid"
    return dict_get(0, name, vals + 8, hk)


def set_members(s):
    dummy = p64(SYM["_PySet_Dummy"])
    mask, table = i64(s + 32), p64(s + 40)
    out = []
    for i in range(mask + 1):
        k = p64(table + 16 * i)
        if k and k != dummy:
            out.append(k)
    return out, i64(s + 16), i64(s + 24)


def code_name(code):
    return pystr(p64(code + V.get("co_qualname", V["co_name"]))) if MINOR >= 11 else pystr(p64(code + V["co_name"]))


def coro_info(c):
    """(qualname, code name, yf) for a native coroutine/generator."""
    qual = pystr(p64(c + V["cr_qual"]))
    if MINOR <= 10:
        f = p64(c + V["cr_frame"])
        if not f:
            return qual, None, None, "no frame (finished)"
        code = p64(f + V["f_code"])
        lasti = i32(f + V["f_lasti"])
        co = p64(code + V["co_code"]) + 32                      # PyBytesObject.ob_sval
        if MINOR <= 9:
            top = p64(f + V["f_stacktop"])
            if not top or lasti < 0:
                return qual, code_name(code), None, "stacktop NULL or not started"
            op = u8(co + lasti + 2)                            # f_lasti is a byte offset
            yf = p64(top - 8) if op == 72 else None
        else:
            if lasti < 0:
                return qual, code_name(code), None, "not started"
            op = u8(co + (lasti + 1) * 2)                      # f_lasti counts code units
            depth = i32(f + V["f_stackdepth"])
            yf = p64(p64(f + V["f_valuestack"]) + 8 * (depth - 1)) if op == 72 else None
        return qual, code_name(code), yf, "lasti=%d next_op=%d" % (lasti, op)
    fi = c + V["cr_iframe"]
    state = i8(c + V["cr_fstate"])
    code = p64(fi + V["if_code"])
    stacktop = i32(fi + V["if_stacktop"])
    peek = lambda: p64(fi + V["if_localsplus"] + 8 * (stacktop - 1))
    if MINOR == 11:
        if state == -2 or state >= 1:   # CREATED, COMPLETED/CLEARED
            return qual, code_name(code), None, "state=%d" % state
        nxt = u16(p64(fi + V["if_instr"]) + 2)
        op, arg = nxt & 0xff, nxt >> 8
        yf = peek() if op in (151, 150) and arg >= 2 else None  # RESUME / RESUME_QUICK
        return qual, code_name(code), yf, "state=%d next=(%d,%d)" % (state, op, arg)
    if MINOR == 12:
        if state == -2 or state >= 1:
            return qual, code_name(code), None, "state=%d" % state
        instr = p64(fi + V["if_instr"])
        op, arg = u8(instr + 2), u8(instr + 3)
        yf = peek() if op in (151, 240) and arg >= 2 else None  # RESUME / INSTRUMENTED_RESUME
        return qual, code_name(code), yf, "state=%d next=(%d,%d)" % (state, op, arg)
    yf = peek() if state == -1 else None                          # FRAME_SUSPENDED_YIELD_FROM
    return qual, code_name(code), yf, "state=%d" % state


def await_chain(c, depth=0):
    out = []
    while c and depth < 20:
        depth += 1
        t = tp(c)
        if t in (SYM["PyCoro_Type"], SYM["PyGen_Type"]):
            qual, cname, yf, why = coro_info(c)
            out.append(("coro" if t == SYM["PyCoro_Type"] else "gen", hex(c), qual, cname, why))
            c = yf
        elif tpname(c) == "_asyncio.FutureIter":
            fut = p64(c + 16)
            out.append(("FutureIter", hex(c), "-> future", hex(fut), tpname(fut)))
            break
        else:
            out.append((tpname(c), hex(c)))
            break
    return out


def waiter_of(cb):
    """Task that registered callback `cb` (task wakeup) on a future."""
    n = tpname(cb)
    if n == "builtin_function_or_method":
        return p64(cb + 24), "PyCFunction.m_self"
    if n in ("TaskWakeupMethWrapper",):
        return p64(cb + 16), "TaskWakeupMethWrapper.ww_task"
    if n == "method":
        return p64(cb + 24), "PyMethod.im_self"
    return None, n


# ---------------------------------------------------------------- walk
interp = p64(SYM["_PyRuntime"] + V["rt_interp"])
modules = p64(interp + V["interp_modules"])
print("interp 0x%x sys.modules 0x%x (%s)" % (interp, modules, tpname(modules)))
tasks_mod = dict_get(modules, "asyncio.tasks")
amod = dict_get(modules, "_asyncio")
md = p64(tasks_mod + 16)
reg_names = ["_all_tasks"] if MINOR <= 11 else ["_scheduled_tasks", "_eager_tasks"]
regs = {n: dict_get(md, n) for n in reg_names + ["_current_tasks"]}
print("asyncio.tasks module 0x%x; registries:" % tasks_mod,
      {k: (hex(v), tpname(v)) for k, v in regs.items()})

# cross-check against the C module's own reference
as_base, as_path = image(r"_asyncio\.cpython")
if MINOR <= 11:
    st = elf_syms(as_path, {"all_tasks", "current_tasks"}, ".symtab")
    c_all = p64(as_base + st["all_tasks"])
    c_cur = p64(as_base + st["current_tasks"])
    print("C static all_tasks (.symtab LOCAL @0x%x) -> 0x%x  same object: %s" %
          (st["all_tasks"], c_all, c_all == regs["_all_tasks"]))
    print("C static current_tasks -> 0x%x same: %s" % (c_cur, c_cur == regs["_current_tasks"]))
else:
    state = p64(amod + 32)                                        # PyModuleObject.md_state
    print("_asyncio md_state 0x%x: current_tasks same %s, scheduled_tasks same %s, eager_tasks same %s" % (
        state, p64(state + 48) == regs["_current_tasks"], p64(state + 56) == regs["_scheduled_tasks"],
        p64(state + 64) == regs["_eager_tasks"]))

ws = regs[reg_names[0]]
data = getattr_inst(ws, "data")
members, fill, used = set_members(data)
print("WeakSet.data set 0x%x (%s) fill=%d used=%d" % (data, tpname(data), fill, used))
none = SYM["_Py_NoneStruct"]
cur = regs["_current_tasks"]
print("_current_tasks dict used=%d" % i64(cur + 16))
for i, k, v in dict_entries(p64(cur + 32)):
    print("  current_tasks[%s 0x%x] = 0x%x %s name=%r" % (tpname(k), k, v, tpname(v), pystr(p64(v + V["t_name"]))))
    for step in await_chain(p64(v + V["t_coro"])):
        print("    running chain:", step)
if MINOR >= 12:
    em, ef, eu = set_members(regs["_eager_tasks"])
    print("_eager_tasks set used=%d members=%s" % (eu, [(hex(m), tpname(m), pystr(p64(m + V["t_name"]))) for m in em]))
for wr in members:
    obj = p64(wr + 16)
    if obj == none:
        print("  dead weakref 0x%x" % wr)
        continue
    print("\n  weakref 0x%x (%s) -> 0x%x %s" % (wr, tpname(wr), obj, tpname(obj)))
    nm = p64(obj + V["t_name"])
    nmv = pystr(nm) if tpname(nm) == "str" else ("int %d" % pyint(nm) if tpname(nm) == "int" else tpname(nm))
    print("    task_name (0x%x %s) = %r; fut_state=%d" % (nm, tpname(nm), nmv, u32(obj + V["f_state"])))
    coro = p64(obj + V["t_coro"])
    for step in await_chain(coro):
        print("    chain:", step)
    w = p64(obj + V["t_waiter"])
    if w:
        print("    task_fut_waiter 0x%x %s" % (w, tpname(w)))
        cb0 = p64(w + 24)
        if cb0:
            t, how = waiter_of(cb0)
            print("      waiter.fut_callback0 0x%x %s -> task 0x%x via %s (== this task: %s)" %
                  (cb0, tpname(cb0), t or 0, how, t == obj))
        cbs = p64(w + 40)
        print("      waiter.fut_callbacks = 0x%x" % cbs)
        if cbs:
            n = i64(cbs + 16)
            items = p64(cbs + 24)
            for i in range(n):
                tup = p64(items + 8 * i)
                cb = p64(tup + 24)
                t, how = waiter_of(cb)
                print("      waiter.fut_callbacks[%d] (%s, ctx) -> 0x%x via %s" % (i, tpname(cb), t or 0, how))
    # who awaits THIS task? (its own callbacks)
    cb0 = p64(obj + 24)
    cbs = p64(obj + 40)
    if cbs:
        for i in range(i64(cbs + 16)):
            tup = p64(p64(cbs + 24) + 8 * i)
            t, how = waiter_of(p64(tup + 24))
            print("    awaited-by (task.fut_callbacks[%d] tuple[0] %s, tuple[1] %s) -> 0x%x via %s" % (
                i, tpname(p64(tup + 24)), tpname(p64(tup + 32)), t or 0, how))
    if cb0:
        t, how = waiter_of(cb0)
        print("    awaited-by (task.fut_callback0 %s) -> 0x%x via %s" % (tpname(cb0), t or 0, how))
