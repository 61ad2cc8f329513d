// An SQLite connection and its prepared statements, each closing itself (RAII), shared by every
// SQLite user (the knowledge-base index, the judge's reply cache).
//
// What must hold: a connection outlives its statements (declare the SqliteDb first); a failed
// open, exec, prepare or step throws Error with the exit code and the message prefix given at
// construction (e.g. "knowledge base index").
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "util/error.h"

namespace drivevqa {

class SqliteDb {
 public:
  // Throws Error(code, "<path>: cannot open the <what> (<reason>)").
  SqliteDb(const std::filesystem::path& path, int flags, ExitCode code, std::string what);
  // nullptr when the file cannot be opened: for probes that treat that as "not there".
  static std::unique_ptr<SqliteDb> try_open(const std::filesystem::path& path, int flags);
  ~SqliteDb() { sqlite3_close(db_); }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* get() const { return db_; }
  const std::filesystem::path& path() const { return path_; }
  // Runs `sql` (statements without results); throws Error(code, "<what>: <reason>").
  void exec(const char* sql) const;

 private:
  SqliteDb() = default;
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  ExitCode code_ = ExitCode::kFailure;
  std::string what_;
};

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const char* sql, ExitCode code, std::string what);
  ~SqliteStatement() { sqlite3_finalize(stmt_); }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  SqliteStatement& bind(int i, const std::string& v);
  SqliteStatement& bind(int i, int64_t v);
  SqliteStatement& bind_real(int i, double v);
  // True when a row is ready, false when the statement is done; throws on an error.
  bool step();
  // Ready to run again, with no bindings.
  void reset();

  std::string text(int col) const;
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  [[noreturn]] void fail(sqlite3* db) const;

  sqlite3_stmt* stmt_ = nullptr;
  ExitCode code_;
  std::string what_;
};

}  // namespace drivevqa
