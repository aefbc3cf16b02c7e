-- wrk script for scripts/compare-webhook: posts the GitHub push fixture, signed with
-- X-Hub-Signature-256, as a distinct change each time (a new `after` sha and delivery id),
-- so that neither tool can answer from a cache and switchyard stores every one.
-- HMAC-SHA256 comes from OpenSSL's libcrypto through LuaJIT's FFI.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct evp_md_st EVP_MD;
  const EVP_MD *EVP_sha256(void);
  unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                      const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]]
local crypto = ffi.load("crypto")

local secret = os.getenv("BENCH_SECRET")
local template_path = os.getenv("BENCH_BODY")
local placeholder = "0000000000000000000000000000000000000000"

local threads = {}
local counter = 0
local before_after, after_rest

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(template_path, "rb"))
  local body = f:read("*a")
  f:close()
  -- The fixture deletes a tag (after = zeros, deleted = true): make it an update instead.
  body = body:gsub('"deleted": true', '"deleted":false')
  local s, e = body:find('"after": "' .. placeholder .. '"', 1, true)
  assert(s, "the fixture has no all-zero after sha")
  before_after = body:sub(1, s - 1) .. '"after": "'
  after_rest = '"' .. body:sub(e + 1)
end

local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

local function sign(body)
  crypto.HMAC(crypto.EVP_sha256(), secret, #secret, body, #body, md, md_len)
  local out = {}
  for i = 0, 31 do out[i + 1] = hex[md[i]] end
  return "sha256=" .. table.concat(out)
end

function request()
  counter = counter + 1
  local after = string.format("%08d%032d", tid, counter)
  local body = before_after .. after .. after_rest
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("bench-%d-%d", tid, counter),
    ["X-GitHub-Hook-ID"] = "1",
    ["X-Hub-Signature-256"] = sign(body),
  }
  return wrk.format("POST", nil, headers, body)
end
