"""The test kit: real servers and processes on 127.0.0.1 for the tests, the benches and the fault drills.

Importable without Django settings (the bench sets Django up after starting the stack) and
free of the apps: it imports nothing from assets, notifications or tasks.

- `net`: free_port, port_open, wait_until, ServerError
- `processes`: stopping processes and process groups, Proc, the celery worker/beat command lines
- `redis`: a throwaway redis-server (RedisServer, redis_server)
- `postgres`: a throwaway PostgreSQL cluster (PostgresServer)
- `smtp`: the SMTP sink (aiosmtpd), for the tests' knobs and the drills' counters alike
- `twilio`: the fake Twilio Messages API (FakeTwilio) and the tests' scripted answers on pytest-httpserver
"""
