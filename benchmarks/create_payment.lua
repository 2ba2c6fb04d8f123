-- wrk script: POST /api/v1/payments with a unique Idempotency-Key per request.
--
-- Environment (set by bench_payments.py):
--   ONETRIP_BENCH_KEY     department API key ("otk_...")
--   ONETRIP_BENCH_RUN     run id, makes keys unique across runs against one database
--   ONETRIP_BENCH_IDS     optional path prefix: each thread appends the ids of the
--                         payments it saw created (201) to <prefix>.<thread id>
--
-- Each wrk thread has its own Lua state; setup() numbers the threads so that
-- "<run>-<thread>-<counter>" is unique for the whole run.

local api_key = os.getenv("ONETRIP_BENCH_KEY") or error("ONETRIP_BENCH_KEY is not set")
local run_id = os.getenv("ONETRIP_BENCH_RUN") or "run"
local ids_prefix = os.getenv("ONETRIP_BENCH_IDS")

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local counter = 0
created = 0 -- globals: done() reads them with thread:get()
other = 0
local ids_file = nil

local surnames = { "张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴" }
local givens = { "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "洋" }
local districts = { "西湖区", "上城区", "拱墅区", "滨江区", "余杭区" }

function init(args)
  if ids_prefix then
    -- fully buffered; the C runtime flushes it when wrk exits
    ids_file = io.open(ids_prefix .. "." .. tid, "w")
  end
end

-- the reference is unique too (one payment per reference): run, thread and counter
local template = '{"matter_code":"passport","reference":"CRJ-%s-%s-%06d",'
  .. '"applicant":{"name":"%s","phone":"13800138000","email":"applicant%d@example.cn","language":"zh-CN"},'
  .. '"return_url":"https://zwfw.example.gov.cn/onetrip/done?ref=%d",'
  .. '"delivery":{"method":"courier","address":{"recipient":"%s","phone":"13800138000",'
  .. '"province":"浙江省","city":"杭州市","district":"%s","line1":"文三路 %d 号 %d 幢 %d 室",'
  .. '"postal_code":"310012"}},'
  .. '"metadata":{"window":"市民中心 3 楼 %d 号窗口","channel":"浙里办"}}'

function request()
  counter = counter + 1
  local n = counter
  local name = surnames[(n % 10) + 1] .. givens[(math.floor(n / 10) % 10) + 1]
  local body = string.format(template, run_id, tid, n, name, n, n, name,
    districts[(n % 5) + 1], (n % 500) + 1, (n % 30) + 1, (n % 2000) + 101, (n % 40) + 1)
  local headers = {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run_id .. "-" .. tid .. "-" .. n,
  }
  return wrk.format("POST", "/api/v1/payments", headers, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
    if ids_file then
      local id = string.match(body, '"id":"(pay_[^"]+)"')
      if id then ids_file:write(id, "\n") end
    end
  else
    other = other + 1
    if other <= 3 then io.stderr:write("status ", status, ": ", string.sub(body, 1, 300), "\n") end
  end
end

function done(summary, latency, requests)
  local total_created, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_created = total_created + (thread:get("created") or 0)
    total_other = total_other + (thread:get("other") or 0)
  end
  io.write(string.format("BENCH created_201=%d other_status=%d\n", total_created, total_other))
end
