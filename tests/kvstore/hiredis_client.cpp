// hiredis (Debian's libhiredis-dev, a C client no one here wrote) against a running pobj-kv:
// commands built with format strings and binary-safe arguments, a pipeline of appended commands,
// error and nil replies, integer and array replies, a MULTI/EXEC transaction.
//   hiredis_client PORT        (tests/kvstore/hiredis_test.py starts the server and runs it)
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <hiredis/hiredis.h>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

redisReply* command(redisContext* c, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  void* r = redisvCommand(c, format, ap);
  va_end(ap);
  if (r == nullptr) {
    std::fprintf(stderr, "connection error: %s\n", c->errstr);
    std::exit(2);
  }
  return static_cast<redisReply*>(r);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hiredis_client PORT\n");
    return 2;
  }
  redisContext* c = redisConnect("127.0.0.1", std::atoi(argv[1]));
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "cannot connect: %s\n", c != nullptr ? c->errstr : "no memory");
    return 2;
  }
  redisReply* r = command(c, "PING");
  expect(r->type == REDIS_REPLY_STATUS && std::strcmp(r->str, "PONG") == 0, "PING is +PONG");
  freeReplyObject(r);

  const char binary[] = {'a', '\0', 'b', '\r', '\n', 'c'};
  r = command(c, "SET %s %b", "bin", binary, sizeof(binary));
  expect(r->type == REDIS_REPLY_STATUS && std::strcmp(r->str, "OK") == 0, "SET of a binary value is +OK");
  freeReplyObject(r);
  r = command(c, "GET %s", "bin");
  expect(r->type == REDIS_REPLY_STRING && r->len == sizeof(binary) && std::memcmp(r->str, binary, sizeof(binary)) == 0,
         "GET returns the binary value whole");
  freeReplyObject(r);
  r = command(c, "GET %s", "missing");
  expect(r->type == REDIS_REPLY_NIL, "GET of a missing key is nil");
  freeReplyObject(r);
  r = command(c, "INCRBY %s %d", "n", 41);
  expect(r->type == REDIS_REPLY_INTEGER && r->integer == 41, "INCRBY is an integer");
  freeReplyObject(r);
  r = command(c, "INCR %s", "bin");
  expect(r->type == REDIS_REPLY_ERROR && std::strstr(r->str, "not an integer") != nullptr, "INCR of text is an error");
  freeReplyObject(r);

  // A pipeline: 1000 commands sent, then 1000 replies read.
  for (int i = 0; i < 1000; ++i) redisAppendCommand(c, "SET key:%d %d", i, i * 2);
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK) return 2;
    ok += static_cast<redisReply*>(reply)->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
  }
  expect(ok == 1000, "a pipeline of 1000 SETs gets 1000 +OK");
  r = command(c, "MGET key:0 key:999 nope");
  expect(r->type == REDIS_REPLY_ARRAY && r->elements == 3 && std::strcmp(r->element[1]->str, "1998") == 0 &&
             r->element[2]->type == REDIS_REPLY_NIL,
         "MGET is an array with a nil");
  freeReplyObject(r);

  r = command(c, "HSET h f1 v1 f2 v2");
  expect(r->type == REDIS_REPLY_INTEGER && r->integer == 2, "HSET counts new fields");
  freeReplyObject(r);
  r = command(c, "HGETALL h");
  expect(r->type == REDIS_REPLY_ARRAY && r->elements == 4, "HGETALL is a flat array in RESP2");
  freeReplyObject(r);

  freeReplyObject(command(c, "MULTI"));
  r = command(c, "INCR n");
  expect(r->type == REDIS_REPLY_STATUS && std::strcmp(r->str, "QUEUED") == 0, "commands in MULTI are +QUEUED");
  freeReplyObject(r);
  freeReplyObject(command(c, "INCR n"));
  r = command(c, "EXEC");
  expect(r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->integer == 43, "EXEC runs the queue");
  freeReplyObject(r);

  redisFree(c);
  if (failures == 0) std::printf("hiredis: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
