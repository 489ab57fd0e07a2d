wrk.method = "POST"
wrk.body = '{"inputs":{"message":"hello"}}'
wrk.headers["Content-Type"] = "application/json"
