"""A primary and a physical standby of it, made for one test: the standby
is a copy of the primary's data directory taken between pg_backup_start()
and pg_backup_stop() (the npm builds ship no pg_basebackup, and Debian's
is 15's), streams from a physical slot on the primary, and synchronizes
the primary's failover slots (sync_replication_slots, PostgreSQL 17+).
The primary waits for that standby before logical walsenders send a change
(synchronized_standby_slots), so a logical client never gets a change the
standby lacks."""

import os
import shutil
import subprocess

from pgharness import Database, PgServer, psql_env, wait_until

PHYSICAL_SLOT = "standby1"


class Pair:
    def __init__(self, major):
        self.major = major
        self.primary = PgServer(major)
        self.standby = None
        self.primary.start()
        self.admin = Database(self.primary, "postgres")
        self.admin.psql("select pg_create_physical_replication_slot("
                        "'%s', true);" % PHYSICAL_SLOT)
        self.standby = PgServer(major)
        self._copy_primary()
        self._configure_standby()
        self.standby.start()
        self.admin.psql("alter system set synchronized_standby_slots = '%s';"
                        "select pg_reload_conf();" % PHYSICAL_SLOT)
        wait_until(self._streaming, timeout=60,
                   what="the standby to stream from the primary")

    def _streaming(self):
        return self.admin.scalar(
            "select count(*) from pg_stat_replication where application_name"
            " = '%s' and state = 'streaming'" % PHYSICAL_SLOT) == "1"

    def _copy_primary(self):
        """The data directory copied inside a backup, then what a standby
        must not start with (the primary's pid file, WAL and slots)
        removed; the backup label written as pg_backup_stop() gave it."""
        target = self.standby.datadir
        label = os.path.join(self.standby.root, "backup_label")
        script = "\n".join([
            "select pg_backup_start('pgspout-test', true);",
            "\\! cp -a %s %s" % (self.primary.datadir, target),
            "\\pset tuples_only on",
            "\\pset format unaligned",
            "\\o %s" % label,
            "select labelfile from pg_backup_stop(false);",
            "\\o",
            ""])
        r = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
             self.primary.conninfo()], input=script, capture_output=True,
            text=True, env=psql_env())
        assert r.returncode == 0, r.stderr
        for name in ("postmaster.pid", "postmaster.opts"):
            path = os.path.join(target, name)
            if os.path.exists(path):
                os.unlink(path)
        for sub in ("pg_wal", "pg_replslot"):
            for entry in os.listdir(os.path.join(target, sub)):
                path = os.path.join(target, sub, entry)
                if os.path.isfile(path):
                    os.unlink(path)
                elif sub == "pg_replslot":
                    shutil.rmtree(path)
        shutil.copy(label, os.path.join(target, "backup_label"))
        self._own(os.path.join(target, "backup_label"))

    def _own(self, path):
        if self.standby.run_as:
            subprocess.run(["chown", "%s:" % self.standby.run_as, path],
                           check=True)

    def _configure_standby(self):
        conf = "\n".join([
            "",
            "unix_socket_directories = '%s'" % self.standby.sockdir,
            "primary_conninfo = 'host=127.0.0.1 port=%d user=postgres "
            "dbname=postgres application_name=%s'"
            % (self.primary.port, PHYSICAL_SLOT),
            "primary_slot_name = '%s'" % PHYSICAL_SLOT,
            "hot_standby = on",
            "hot_standby_feedback = on",
            "sync_replication_slots = on",
            ""])
        with open(os.path.join(self.standby.datadir, "postgresql.conf"),
                  "a") as f:
            f.write(conf)
        signal_file = os.path.join(self.standby.datadir, "standby.signal")
        open(signal_file, "w").close()
        self._own(signal_file)

    def synced(self, slot):
        """Whether the standby holds the logical slot, synchronized and
        persistent (usable after a promotion)."""
        rows = Database(self.standby, "postgres").query(
            "select synced, temporary from pg_replication_slots where "
            "slot_name = '%s'" % slot)
        return rows == [["t", "f"]]

    def synced_soon(self, slot):
        """A predicate for wait_until: synced(slot), after asking the
        primary to log its running transactions. The standby keeps its
        copy of a new slot temporary until the primary's slot reserves no
        WAL older than the copy does, and that slot's restart_lsn moves only
        past such a record, which the primary logs on its own every 15 s
        or so (the wait took from 25 s to over 100 s)."""
        def check():
            self.admin.psql("select pg_log_standby_snapshot();")
            return self.synced(slot)
        return check

    def fail_over(self):
        """The primary stopped (immediate: a crash), the standby promoted."""
        self.primary.stop()
        self.standby._as_user([os.path.join(self.standby.bindir, "pg_ctl"),
                               "-D", self.standby.datadir, "-w", "-t", "60",
                               "promote"])

    def conninfo(self, dbname):
        """Both servers; libpq connects to whichever is the primary."""
        return ("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=%s user=postgres "
                "target_session_attrs=read-write connect_timeout=5"
                % (self.primary.port, self.standby.port, dbname))

    def stop(self):
        for server in (self.primary, self.standby):
            if server is not None:
                server.stop()
                shutil.rmtree(server.root, ignore_errors=True)
