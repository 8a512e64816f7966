"""Files built for an arm64 guest from the default (host) build.

`arm64_files(name, srcs)` builds srcs with the cross toolchain of
//bazel/arm64 (a configuration transition), so a host test can carry an
arm64 vminitd/initramfs as data and `bazel build //...` builds both."""

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

def _arm64_files_impl(ctx):
    files = depset(transitive = [s[DefaultInfo].files for s in ctx.attr.srcs])
    return [DefaultInfo(files = files, runfiles = ctx.runfiles(transitive_files = files))]

arm64_files = rule(
    implementation = _arm64_files_impl,
    attrs = {
        "srcs": attr.label_list(cfg = _arm64, allow_files = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
