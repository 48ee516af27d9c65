// An embedded ActiveMQ Classic broker for the tests, run as a single-file program:
// `java -javaagent:jolokia-agent.jar=... -cp '<activemq libs>/*' ClassicBroker.java
// NAME OPENWIRE_PORT STOMP_PORT USER PASSWORD`. Queues dead-letter into the shared
// ActiveMQ.DLQ, except queues named `ind.*`, which use individual `DLQ.<queue>` queues.
// It prints "started" once its connectors accept connections and stops on SIGTERM.
import java.util.ArrayList;
import java.util.List;
import org.apache.activemq.broker.BrokerPlugin;
import org.apache.activemq.broker.BrokerService;
import org.apache.activemq.broker.region.policy.IndividualDeadLetterStrategy;
import org.apache.activemq.broker.region.policy.PolicyEntry;
import org.apache.activemq.broker.region.policy.PolicyMap;
import org.apache.activemq.broker.region.policy.SharedDeadLetterStrategy;
import org.apache.activemq.security.AuthenticationUser;
import org.apache.activemq.security.SimpleAuthenticationPlugin;

public class ClassicBroker {
    public static void main(String[] args) throws Exception {
        BrokerService broker = new BrokerService();
        broker.setBrokerName(args[0]);
        broker.setPersistent(false);
        broker.setUseJmx(true);
        broker.setUseShutdownHook(true);
        broker.getManagementContext().setCreateConnector(false);
        broker.getSystemUsage().getMemoryUsage().setLimit(256L * 1024 * 1024);

        PolicyEntry shared = new PolicyEntry();
        shared.setQueue(">");
        SharedDeadLetterStrategy sharedDlq = new SharedDeadLetterStrategy();
        sharedDlq.setProcessNonPersistent(true);
        shared.setDeadLetterStrategy(sharedDlq);
        PolicyEntry individual = new PolicyEntry();
        individual.setQueue("ind.>");
        IndividualDeadLetterStrategy perQueue = new IndividualDeadLetterStrategy();
        perQueue.setQueuePrefix("DLQ.");
        perQueue.setUseQueueForQueueMessages(true);
        perQueue.setProcessNonPersistent(true);
        individual.setDeadLetterStrategy(perQueue);
        PolicyMap policies = new PolicyMap();
        policies.setPolicyEntries(List.of(shared, individual));
        broker.setDestinationPolicy(policies);

        List<AuthenticationUser> users = new ArrayList<>();
        users.add(new AuthenticationUser(args[3], args[4], "admins"));
        broker.setPlugins(new BrokerPlugin[] {new SimpleAuthenticationPlugin(users)});

        broker.addConnector("tcp://127.0.0.1:" + args[1]);
        broker.addConnector("stomp://127.0.0.1:" + args[2]);
        broker.start();
        broker.waitUntilStarted();
        System.out.println("started");
        System.out.flush();
        broker.waitUntilStopped();
    }
}
