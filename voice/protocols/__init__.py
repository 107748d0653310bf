"""Providers' wire protocols as sans-IO modules: plain data in, plain data out, no Django, no sockets."""
