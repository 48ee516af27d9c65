// A consumer of the KIP-848 group protocol (group.protocol=consumer), which aiokafka cannot
// speak: run as a single-file program, `java -cp '<kafka libs>/*' Kip848Consumer.java
// BOOTSTRAP GROUP TOPIC`. It prints "joined" after its first poll and "committed N" after each
// commit; it leaves the group and exits when its standard input closes.
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.KafkaConsumer;

public class Kip848Consumer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", args[1]);
        props.put("group.protocol", "consumer");
        props.put("auto.offset.reset", "earliest");
        props.put("enable.auto.commit", "false");
        props.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        props.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        AtomicBoolean running = new AtomicBoolean(true);
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() != -1) { }
            } catch (Exception ignored) { }
            running.set(false);
        });
        stdin.setDaemon(true);
        stdin.start();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[2]));
            boolean joined = false;
            while (running.get()) {
                int count = consumer.poll(Duration.ofMillis(200)).count();
                if (!joined && !consumer.assignment().isEmpty()) {
                    joined = true;
                    System.out.println("joined");
                    System.out.flush();
                }
                if (count > 0) {
                    consumer.commitSync();
                    System.out.println("committed " + count);
                    System.out.flush();
                }
            }
        }
        System.out.println("left");
        System.out.flush();
    }
}
