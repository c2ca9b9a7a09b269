"""Reference retry proxy, flaky upstream simulator and the proxy access log."""
