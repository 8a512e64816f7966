"""Code generation from .proto files with the system protoc / protoc-c.

Bazel 4.2.3 offline has no @com_google_protobuf, so proto_library is out;
these macros run the Debian tools from genrules instead.
"""

_WKT = "/usr/include"

def _stem(path):
    return path[:-len(".proto")]

def c_proto_library(name, srcs, well_known = [], visibility = None, generated = False):
    """protobuf-c code plus vrpc method tables and a reflection pool.

    srcs are paths relative to this package, which is the proto root (they
    import each other as "vessel/v1/types.proto"). well_known lists
    google/protobuf/*.proto files the srcs import; their C code is generated
    too since protobuf-c does not ship it. Emits cc_library `name` with
    headers "<stem>.pb-c.h" and "<name>_rpc.h". generated: the srcs are
    outputs of rules of this package (then the proto root is there).
    """
    pkg = native.package_name()
    root = pkg if pkg else "."
    if generated:
        root = "$(GENDIR)/" + root
    c_outs = []
    for s in srcs + well_known:
        c_outs += [_stem(s) + ".pb-c.c", _stem(s) + ".pb-c.h"]
    wkt_paths = " ".join(well_known)
    src_paths = " ".join([root + "/" + s for s in srcs])

    native.genrule(
        name = name + "_pbc",
        srcs = srcs,
        outs = c_outs,
        cmd = "protoc-c -I{root} -I{wkt} --c_out=$(RULEDIR) {srcs} {wk}".format(
            root = root,
            wkt = _WKT,
            srcs = src_paths,
            wk = wkt_paths,
        ),
    )
    native.genrule(
        name = name + "_descriptor_set",
        srcs = srcs,
        outs = [name + ".descriptor_set.pb"],
        cmd = "protoc -I{root} -I{wkt} --include_imports --descriptor_set_out=$@ {srcs}".format(
            root = root,
            wkt = _WKT,
            srcs = src_paths,
        ),
    )
    includes = " ".join(["--include=" + _stem(s) + ".pb-c.h" for s in srcs])
    native.genrule(
        name = name + "_rpcgen",
        srcs = [name + ".descriptor_set.pb"],
        outs = [name + "_rpc.h", name + "_rpc.c"],
        tools = ["//bazel:rpcgen.py"],
        cmd = ("/usr/bin/python3 $(location //bazel:rpcgen.py) --descriptor_set=$< " +
               "--name={name} --out_h=$(location {name}_rpc.h) " +
               "--out_c=$(location {name}_rpc.c) --header_path={name}_rpc.h {inc} {files}").format(
            name = name,
            inc = includes,
            files = " ".join(srcs),
        ),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in c_outs if o.endswith(".c")] + [name + "_rpc.c"],
        hdrs = [o for o in c_outs if o.endswith(".h")] + [name + "_rpc.h"],
        includes = ["."],
        deps = ["//common:vrpc"],
        linkopts = ["-lprotobuf-c"],
        visibility = visibility,
    )
