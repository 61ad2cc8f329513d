// A prepared SQLite statement that finalizes itself (RAII), shared by every SQLite user (the
// knowledge-base index, the judge's reply cache).
//
// What must hold: the database handle outlives the statement; a failed prepare or step throws
// Error with the exit code and message prefix given at construction (e.g. "knowledge base index").
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "util/error.h"

namespace drivevqa {

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
