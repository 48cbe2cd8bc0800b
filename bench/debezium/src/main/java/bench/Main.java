package bench;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * The benchmark's Debezium peer: drains an existing pgoutput slot with the
 * embedded Debezium engine (no snapshot, stream only) into a JSON-lines file,
 * one line per change, and exits once it has seen a change at or past END.
 *
 * <p>The harness commits one marker row after reading END (bench/README.md),
 * so the first change whose source LSN is at or past END is that marker: it
 * is not written, and every change of the workload has been. Exit status: 0
 * done, 2 usage, 3 timeout, 1 the engine failed.
 */
public final class Main {
    private static final int EXIT_FAILED = 1;
    private static final int EXIT_USAGE = 2;
    private static final int EXIT_TIMEOUT = 3;

    private final long endLsn;
    private final BufferedOutputStream out;
    private final JsonConverter json = new JsonConverter();
    private final CountDownLatch done = new CountDownLatch(1);
    private volatile boolean sawEnd;
    private volatile Throwable failure;
    private long written;
    // Wall-clock milestones (ms since the epoch) for the phase breakdown
    // printed at exit: the harness records it beside the whole figure.
    private volatile long firstChangeMs;
    private volatile long endSeenMs;

    private Main(long endLsn, BufferedOutputStream out) {
        this.endLsn = endLsn;
        this.out = out;
        // Values only, without the schema Debezium's JSON converter would
        // otherwise repeat in every line (closer to what the other drains
        // write: one self-describing change per line).
        json.configure(Map.of("schemas.enable", "false"), false);
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parseArgs(argv);
        String[] required = {"host", "port", "dbname", "user", "slot",
                             "publication", "end", "out", "offsets",
                             "timeout"};
        for (String key : required) {
            if (!args.containsKey(key)) {
                System.err.println("debezium-drain: missing " + key + "=...");
                System.exit(EXIT_USAGE);
            }
        }
        System.exit(run(args));
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (String a : argv) {
            int eq = a.indexOf('=');
            if (eq <= 0) {
                System.err.println("debezium-drain: expected KEY=VALUE, got "
                                   + a);
                System.exit(EXIT_USAGE);
            }
            args.put(a.substring(0, eq), a.substring(eq + 1));
        }
        return args;
    }

    static long parseLsn(String text) {
        int slash = text.indexOf('/');
        if (slash <= 0) {
            throw new IllegalArgumentException("not an LSN: " + text);
        }
        return (Long.parseLong(text.substring(0, slash), 16) << 32)
            | Long.parseLong(text.substring(slash + 1), 16);
    }

    static Properties engineConfig(Map<String, String> args) {
        Properties p = new Properties();
        p.setProperty("name", "bench-debezium");
        p.setProperty("connector.class",
                      "io.debezium.connector.postgresql.PostgresConnector");
        // A throwaway offset file: every drain starts from its fresh slot.
        p.setProperty("offset.storage",
                      "org.apache.kafka.connect.storage.FileOffsetBackingStore");
        p.setProperty("offset.storage.file.filename", args.get("offsets"));
        p.setProperty("offset.flush.interval.ms", "10000");
        p.setProperty("database.hostname", args.get("host"));
        p.setProperty("database.port", args.get("port"));
        p.setProperty("database.user", args.get("user"));
        p.setProperty("database.password", "");
        p.setProperty("database.dbname", args.get("dbname"));
        p.setProperty("topic.prefix", "bench");
        p.setProperty("plugin.name", "pgoutput");
        p.setProperty("slot.name", args.get("slot"));
        p.setProperty("slot.drop.on.stop", "false");
        p.setProperty("publication.name", args.get("publication"));
        p.setProperty("publication.autocreate.mode", "disabled");
        // Stream only: the slot already exists and the workload's changes
        // are all in its stream.
        p.setProperty("snapshot.mode", "no_data");
        p.setProperty("tombstones.on.delete", "false");
        return p;
    }

    private static int run(Map<String, String> args) throws Exception {
        long end = parseLsn(args.get("end"));
        long timeoutS = Long.parseLong(args.get("timeout"));
        FileOutputStream file = new FileOutputStream(args.get("out"));
        Main drain = new Main(end, new BufferedOutputStream(file, 1 << 20));
        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine =
            DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
                .using(engineConfig(args))
                .notifying(drain::handleBatch)
                .using(drain::engineStopped)
                .build();
        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        boolean finished = drain.done.await(timeoutS, TimeUnit.SECONDS);
        engine.close();
        executor.shutdown();
        executor.awaitTermination(60, TimeUnit.SECONDS);
        // Durable at exit, as the file sink's output is (fsync=true).
        drain.out.flush();
        file.getFD().sync();
        file.close();
        if (!finished) {
            System.err.println("debezium-drain: timed out after " + timeoutS
                               + " s with " + drain.written
                               + " changes written");
            return EXIT_TIMEOUT;
        }
        if (!drain.sawEnd) {
            System.err.println("debezium-drain: engine stopped before END: "
                               + drain.failure);
            return EXIT_FAILED;
        }
        drain.printPhases();
        return 0;
    }

    /** One line the harness parses: where the wall time went. */
    private void printPhases() {
        long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();
        long exit = System.currentTimeMillis();
        long first = firstChangeMs != 0 ? firstChangeMs : endSeenMs;
        System.err.printf("debezium-drain: %d changes; startup_s=%.3f "
                          + "streaming_s=%.3f shutdown_s=%.3f%n", written,
                          (first - jvmStart) / 1000.0,
                          (endSeenMs - first) / 1000.0,
                          (exit - endSeenMs) / 1000.0);
    }

    private void handleBatch(
        List<RecordChangeEvent<SourceRecord>> records,
        DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
        throws InterruptedException {
        try {
            for (RecordChangeEvent<SourceRecord> event : records) {
                if (!sawEnd) {
                    write(event.record());
                }
                committer.markProcessed(event);
            }
            out.flush();
        } catch (IOException e) {
            failure = e;
            done.countDown();
            return;
        }
        committer.markBatchFinished();
    }

    private void write(SourceRecord record) throws IOException {
        if (firstChangeMs == 0) {
            firstChangeMs = System.currentTimeMillis();
        }
        Object lsn = record.sourceOffset().get("lsn");
        if (lsn instanceof Long && (Long) lsn >= endLsn) {
            endSeenMs = System.currentTimeMillis();
            sawEnd = true;
            done.countDown();
            return;
        }
        if (record.value() == null) {
            return;
        }
        out.write(json.fromConnectData(record.topic(), record.valueSchema(),
                                       record.value()));
        out.write('\n');
        written++;
    }

    private void engineStopped(boolean success, String message,
                               Throwable error) {
        if (!sawEnd) {
            failure = error != null ? error : new RuntimeException(message);
        }
        done.countDown();
    }
}
