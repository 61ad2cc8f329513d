#include "util/sqlite_statement.h"

namespace drivevqa {

SqliteDb::SqliteDb(const std::filesystem::path& path, int flags, ExitCode code, std::string what)
    : path_(path), code_(code), what_(std::move(what)) {
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(code_, path.string() + ": cannot open the " + what_ + " (" + message + ")");
  }
}

std::unique_ptr<SqliteDb> SqliteDb::try_open(const std::filesystem::path& path, int flags) {
  std::unique_ptr<SqliteDb> db(new SqliteDb());
  db->path_ = path;
  if (sqlite3_open_v2(path.c_str(), &db->db_, flags, nullptr) != SQLITE_OK) return nullptr;  // ~SqliteDb closes it
  return db;
}

void SqliteDb::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string message = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error(code_, path_.string() + ": " + what_ + ": " + message);
  }
}

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
