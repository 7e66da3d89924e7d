"""The demo: a CA, the echo workload, the mTLS gateway and three real calls on one machine.

`certs` makes (or reuses) the demo's CAs and certificates, `echo` is the workload (also
run on its own: `python -m mtlskit.demo.echo --port 8080`), `flow` starts both servers and
makes and explains the calls, `browser` says how to make the call from a person's own
browser (`mtlskit demo --browser`). `mtlskit demo` (cli/demo.py) only wires the flags.

Nothing is imported here: `python -m mtlskit.demo.echo` runs this file first, and a
submodule imported here would then be loaded twice (once as itself, once as __main__).
"""
