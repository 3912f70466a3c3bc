import Foundation
import Testing

@testable import ChatServer

@Suite("Migrations")
struct MigrationTests {
    @Test(arguments: [SQLDialect.postgres, .sqlite])
    func everyDialectShipsTheSameNumberedMigrations(_ dialect: SQLDialect) throws {
        let migrations = try dialect.migrations()
        #expect(migrations.map(\.version) == Array(1...migrations.count))
        #expect(migrations.first?.name == "initial_schema")
        #expect(try SQLDialect.postgres.migrations().map(\.name) == SQLDialect.sqlite.migrations().map(\.name))
    }

    @Test func statementsSplitAtLineEndSemicolonsAndSkipComments() {
        let sql = """
            -- leading comment;
            CREATE TABLE a (
                -- inner comment
                x INTEGER CHECK (x IN (1, 2))
            );

            CREATE INDEX a_x ON a (x);
            INSERT INTO a VALUES (1)
            """
        #expect(
            Migration.statements(in: sql) == [
                "CREATE TABLE a (\n    x INTEGER CHECK (x IN (1, 2))\n);", "CREATE INDEX a_x ON a (x);",
                "INSERT INTO a VALUES (1)",
            ])
    }

    @Test func aDollarQuotedBodyStaysOneStatement() {
        let sql = """
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                -- a comment inside the body stays;
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER t AFTER INSERT ON a FOR EACH STATEMENT EXECUTE FUNCTION f();
            """
        #expect(
            Migration.statements(in: sql) == [
                "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
                    + "    -- a comment inside the body stays;\n    RETURN NULL;\nEND\n$$;",
                "CREATE TRIGGER t AFTER INSERT ON a FOR EACH STATEMENT EXECUTE FUNCTION f();",
            ])
    }

    @Test func filesPairUpByVersion() throws {
        let files = [
            "m/0002_second.up.sql": "Mg==", "m/0002_second.down.sql": "Mg==", "m/0001_first.up.sql": "MQ==",
            "m/0001_first.down.sql": "MQ==", "other/0009_x.up.sql": "",
        ]
        let migrations = try SQLDialect.load(files: files, folder: "m/")
        #expect(migrations.map(\.version) == [1, 2] && migrations.map(\.name) == ["first", "second"])
        #expect(migrations[0].upSQL == "1" && migrations[1].downSQL == "2")
        #expect(throws: MigrationError.incomplete(version: 3, name: "third")) {
            try SQLDialect.load(files: ["m/0003_third.up.sql": ""], folder: "m/")
        }
        #expect(throws: MigrationError.badFileName("m/first.up.sql")) {
            try SQLDialect.load(files: ["m/first.up.sql": ""], folder: "m/")
        }
    }

    @Test func divergentHistoryStopsMigrating() throws {
        let migrations = [
            Migration(version: 1, name: "one", upSQL: "A", downSQL: "a"),
            Migration(version: 2, name: "two", upSQL: "B", downSQL: "b"),
        ]
        let applied = [AppliedMigration(version: 1, name: "one", checksum: migrations[0].checksum, appliedAt: Date())]
        #expect(try migrations.pending(after: applied) == [migrations[1]])
        #expect(throws: MigrationError.unknownVersionApplied(version: 3, name: "three")) {
            try migrations.pending(
                after: applied + [AppliedMigration(version: 3, name: "three", checksum: "", appliedAt: Date())])
        }
        #expect(throws: MigrationError.checksumMismatch(version: 1, name: "one")) {
            try migrations.pending(after: [
                AppliedMigration(version: 1, name: "one", checksum: "edited", appliedAt: Date())
            ])
        }
    }
}
