"""Files built for an arm64 guest from the default (host) build.

`arm64_file(name, src, out)` builds src with the cross toolchain of
//bazel/arm64 (a configuration transition) and names the result out in this
package, so a host test can carry the arm64 initramfs beside the host's as
data and `bazel build //...` builds both."""

def _to_arm64(settings, attr):
    # copt/linkopt dropped: the sanitizers of --config=asan are the host's
    # (an arm64 vminitd is static, like the default one).
    return {
        "//command_line_option:cpu": "aarch64",
        "//command_line_option:crosstool_top": "//bazel/arm64:toolchain",
        "//command_line_option:copt": [],
        "//command_line_option:linkopt": [],
    }

_arm64 = transition(
    implementation = _to_arm64,
    inputs = [],
    outputs = [
        "//command_line_option:cpu",
        "//command_line_option:crosstool_top",
        "//command_line_option:copt",
        "//command_line_option:linkopt",
    ],
)

def _arm64_file_impl(ctx):
    src = ctx.attr.src[0][DefaultInfo].files.to_list()
    if len(src) != 1:
        fail("arm64_file: src must be one file")
    out = ctx.actions.declare_file(ctx.attr.out)
    ctx.actions.run_shell(
        inputs = src,
        outputs = [out],
        command = "cp \"$1\" \"$2\"",
        arguments = [src[0].path, out.path],
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

arm64_file = rule(
    implementation = _arm64_file_impl,
    attrs = {
        "src": attr.label(cfg = _arm64, allow_single_file = True),
        "out": attr.string(mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
