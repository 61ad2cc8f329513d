#include "util/sqlite_statement.h"

namespace drivevqa {

SqliteStatement::SqliteStatement(sqlite3* db, const char* sql, ExitCode code, std::string what)
    : code_(code), what_(std::move(what)) {
  if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail(db);
}

SqliteStatement& SqliteStatement::bind(int i, const std::string& v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStatement& SqliteStatement::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

SqliteStatement& SqliteStatement::bind_real(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}

bool SqliteStatement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(sqlite3_db_handle(stmt_));
}

void SqliteStatement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string SqliteStatement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
}

void SqliteStatement::fail(sqlite3* db) const { throw Error(code_, what_ + ": " + sqlite3_errmsg(db)); }

}  // namespace drivevqa
